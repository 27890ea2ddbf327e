"""Acoustic Campaign: Bulk Event Export (BEX) files over SFTP, or Raw Recipient Data Export."""

from __future__ import annotations

from tap_emailtracking.vendors.acoustic.export import AcousticExports
from tap_emailtracking.vendors.acoustic.settings import (
    CONFIG_SCHEMA_DICT,
    DESCRIPTION,
    AcousticSettings,
)
from tap_emailtracking.vendors.acoustic.streams import AcousticEmailEventsStream
from tap_emailtracking.vendors.spec import SyncContext, VendorSpec


def build_source(settings: AcousticSettings, sync: SyncContext) -> AcousticExports:
    """The OAuth client, SFTP site and job ledger of one sync."""
    return AcousticExports(
        settings,
        state=sync.state,
        checkpoint=sync.checkpoint,
        start_date=sync.start_date,
        end_date=sync.end_date,
        temp_dir=sync.temp_dir,
        limits=sync.limits,
        streams=[s for s in sync.streams if isinstance(s, AcousticEmailEventsStream)],
        jobs=sync.jobs,
    )


SPEC: VendorSpec[AcousticSettings, AcousticExports] = VendorSpec(
    key="acoustic",
    name="Acoustic",
    description=DESCRIPTION,
    schema=CONFIG_SCHEMA_DICT,
    read_settings=AcousticSettings.from_config,
    streams=(AcousticEmailEventsStream,),
    build_source=build_source,
)
