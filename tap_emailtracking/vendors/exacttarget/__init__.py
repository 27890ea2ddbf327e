"""ExactTarget (legacy XML API): Tracking BulkAsync exports delivered as ZIP files over (S)FTP."""

from __future__ import annotations

from tap_emailtracking.vendors.exacttarget.export import ExactTargetExports
from tap_emailtracking.vendors.exacttarget.settings import (
    CONFIG_SCHEMA,
    DESCRIPTION,
    ExactTargetSettings,
)
from tap_emailtracking.vendors.exacttarget.streams import STREAM_TYPES, ExactTargetStream
from tap_emailtracking.vendors.spec import SyncContext, VendorSpec


def build_source(settings: ExactTargetSettings, sync: SyncContext) -> ExactTargetExports:
    """One batch cache per sync, fanning each export out to its own selected streams."""
    return ExactTargetExports(
        settings,
        state=sync.state,
        checkpoint=sync.checkpoint,
        start_date=sync.start_date,
        end_date=sync.end_date,
        streams=[stream for stream in sync.streams if isinstance(stream, ExactTargetStream)],
        temp_dir=sync.temp_dir,
        limits=sync.limits,
        jobs=sync.jobs,
    )


SPEC: VendorSpec[ExactTargetSettings, ExactTargetExports] = VendorSpec(
    key="exacttarget",
    name="ExactTarget",
    description=DESCRIPTION,
    schema=CONFIG_SCHEMA.to_dict(),
    read_settings=ExactTargetSettings.from_config,
    streams=STREAM_TYPES,
    build_source=build_source,
)
