"""Pinpointe: asynchronous subscriber and newsletter contact exports over the JSON API."""

from __future__ import annotations

from tap_emailtracking.vendors.pinpointe.export import PinpointeExports
from tap_emailtracking.vendors.pinpointe.settings import (
    CONFIG_SCHEMA,
    DESCRIPTION,
    PinpointeSettings,
)
from tap_emailtracking.vendors.pinpointe.streams import STREAM_TYPES, ExportJobStream
from tap_emailtracking.vendors.spec import SyncContext, VendorSpec


def build_source(settings: PinpointeSettings, sync: SyncContext) -> PinpointeExports:
    """The API client, HTTP result downloads and job ledger of one sync."""
    return PinpointeExports(
        settings,
        state=sync.state,
        checkpoint=sync.checkpoint,
        start_date=sync.start_date,
        end_date=sync.end_date,
        streams=[s for s in sync.streams if isinstance(s, ExportJobStream)],
        temp_dir=sync.temp_dir,
        limits=sync.limits,
        jobs=sync.jobs,
    )


SPEC: VendorSpec[PinpointeSettings, PinpointeExports] = VendorSpec(
    key="pinpointe",
    name="Pinpointe",
    description=DESCRIPTION,
    schema=CONFIG_SCHEMA.to_dict(),
    read_settings=PinpointeSettings.from_config,
    streams=STREAM_TYPES,
    build_source=build_source,
)
