"""Mailkit: raw bounces, messages and responses paged by the last id, campaigns and sends."""

from __future__ import annotations

from tap_emailtracking.vendors.mailkit.export import MailkitExports
from tap_emailtracking.vendors.mailkit.settings import (
    CONFIG_SCHEMA,
    DESCRIPTION,
    MailkitSettings,
)
from tap_emailtracking.vendors.mailkit.streams import STREAM_TYPES
from tap_emailtracking.vendors.spec import SyncContext, VendorSpec


def build_source(settings: MailkitSettings, sync: SyncContext) -> MailkitExports:
    """The API client and its call pacing for one sync."""
    return MailkitExports(settings, start_date=sync.start_date, end_date=sync.end_date)


SPEC: VendorSpec[MailkitSettings, MailkitExports] = VendorSpec(
    key="mailkit",
    name="Mailkit",
    description=DESCRIPTION,
    schema=CONFIG_SCHEMA.to_dict(),
    read_settings=MailkitSettings.from_config,
    streams=STREAM_TYPES,
    build_source=build_source,
)
