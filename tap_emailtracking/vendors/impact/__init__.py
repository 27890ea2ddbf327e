"""impact.com: ClickExport per program and day and ReportExport reports, within daily quotas."""

from __future__ import annotations

from tap_emailtracking.vendors.impact.export import ImpactExports
from tap_emailtracking.vendors.impact.settings import CONFIG_SCHEMA, DESCRIPTION, ImpactSettings
from tap_emailtracking.vendors.impact.streams import (
    ClicksStream,
    JobStream,
    ProgramsStream,
    report_stream,
)
from tap_emailtracking.vendors.spec import SyncContext, VendorSpec


def build_source(settings: ImpactSettings, sync: SyncContext) -> ImpactExports:
    """The API client, quotas, result downloads and job ledger of one sync."""
    return ImpactExports(
        settings,
        state=sync.state,
        checkpoint=sync.checkpoint,
        start_date=sync.start_date,
        end_date=sync.end_date,
        streams=[s for s in sync.streams if isinstance(s, JobStream)],
        temp_dir=sync.temp_dir,
        limits=sync.limits,
        jobs=sync.jobs,
    )


SPEC: VendorSpec[ImpactSettings, ImpactExports] = VendorSpec(
    key="impact",
    name="impact.com",
    description=DESCRIPTION,
    schema=CONFIG_SCHEMA.to_dict(),
    read_settings=ImpactSettings.from_config,
    streams=(ProgramsStream, ClicksStream),
    build_source=build_source,
    configured_streams=lambda settings: [report_stream(r) for r in settings.reports],
)
