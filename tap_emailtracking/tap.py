"""The tap: settings, which vendors are enabled, and their streams.

Vendors come from `vendors/registry.py`; the tap knows each only through its `VendorSpec`. A
vendor contributes streams only when its settings object is present. Secrets are registered for
log redaction before the SDK validates the config, because validation errors quote values. Every
setting of every enabled vendor is checked when the tap is built for a sync, before any stream
runs; how the run then ends (signals, errors, exit codes) is `cli`'s job.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, cast

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from typing_extensions import override

from tap_emailtracking import cli, redaction
from tap_emailtracking.checks import SettingsReader, warn_unknown_keys
from tap_emailtracking.errors import ConfigurationError
from tap_emailtracking.jobs import JobScheduler
from tap_emailtracking.limits import LIMIT_PROPERTIES, Limits
from tap_emailtracking.streams import ExportStream, write_state_now
from tap_emailtracking.vendors.registry import VENDORS
from tap_emailtracking.vendors.spec import SyncContext, VendorSpec
from tap_emailtracking.writer import StateFlushingWriter

ENV_PREFIX = "TAP_EMAILTRACKING_"
TAP = "tap-emailtracking"
# The calendar day is already this far ahead somewhere on Earth (UTC+14).
LATEST_OFFSET = timedelta(hours=14)


def _raw_config(config: Any) -> dict[str, Any]:
    """Merge config dicts/files the way the SDK will, only to learn the secrets early."""
    merged: dict[str, Any] = {}
    items: Sequence[Any]
    if config is None:
        items = []
    elif isinstance(config, str | Path | Mapping):
        items = [config]
    else:
        items = list(config)
    for item in items:
        if isinstance(item, Mapping):
            merged.update(item)
        elif str(item) != "ENV":
            try:
                merged.update(json.loads(Path(item).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
    return merged


def _day(value: str, setting: str) -> date:
    """The calendar day of an ISO date or date-time setting."""
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ConfigurationError(
            f"{setting} {value!r} is not an ISO 8601 date",
            vendor=TAP,
            action=f"set {setting} like 2024-01-31 or 2024-01-31T00:00:00Z",
        ) from None


class WholeMessageWriter(StateFlushingWriter):
    """Output blocks are written whole: a signal during a write is raised once it is out."""

    @override
    def flush_pending(self) -> None:
        """Write the queue out, holding SIGINT/SIGTERM until it is (see `cli.shielded`)."""
        with cli.shielded():
            super().flush_pending()


class TapEmailTracking(Tap):
    """Complete email-tracking exports from every vendor in `vendors/registry.py`."""

    name = "tap-emailtracking"
    message_writer_class = WholeMessageWriter
    # No BATCH: streams write STATE when a window's records are out, which must not happen while
    # those records still sit in a batch file that has not been announced to the target.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        TapCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "start_date",
            th.DateTimeType,
            required=True,
            description="First day of activity to export (the account's calendar day).",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Last day of activity to export, inclusive (default: today). Days "
            "after it are left for a later run.",
        ),
        th.Property(
            "temp_dir",
            th.StringType,
            description="Folder for downloads and spool files (default: the system temp "
            "folder). Needs room for one export's records per selected stream.",
        ),
        *LIMIT_PROPERTIES,
    ).to_dict()
    # Added as dicts: a vendor's schema may carry limits (maxItems) the typing helpers cannot
    # express.
    config_jsonschema["properties"].update(
        {vendor.key: vendor.property_schema() for vendor in VENDORS}
    )

    def __init__(self, *args: Any, config: Any = None, **kwargs: Any) -> None:
        raw = _raw_config(config)
        redaction.register_secrets(redaction.secrets_in_config(raw))
        redaction.register_secrets(redaction.secrets_in_environment(ENV_PREFIX))
        redaction.install_log_redaction()
        # Before the SDK's validation: a misspelt required key is reported as missing there, and
        # its validator fails with a raw AttributeError on a vendor that is not an object.
        self.check_raw_settings(raw)
        self._vendor_settings: dict[str, Any] = {}
        self._jobs = JobScheduler()
        self._jobs_started = False
        super().__init__(*args, config=config, **kwargs)
        redaction.register_secrets(redaction.secrets_in_config(dict(self.config)))
        redaction.install_log_redaction()
        if kwargs.get("validate_config", True):
            self.check_settings()

    @classmethod
    def check_raw_settings(cls, raw: Mapping[str, Any]) -> None:
        """Warn about keys no setting uses, at the top level and in each vendor's object."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        properties: dict[str, Any] = schema["properties"]
        warn_unknown_keys(raw, properties)
        for name, value in raw.items():
            nested = properties.get(name, {}).get("properties")
            if nested and value is not None:
                SettingsReader(value, vendor=TAP, prefix=f"{name}.")  # refuses a non-object
                warn_unknown_keys(value, nested, prefix=f"{name}.")

    def check_settings(self) -> None:
        """Check every setting of every enabled vendor now, before any data moves."""
        read = SettingsReader(self.config, vendor=TAP)
        start = _day(read.text("start_date", required=True), "start_date")
        latest_today = (datetime.now(timezone.utc) + LATEST_OFFSET).date()
        if start > latest_today:
            raise read.bad(
                "start_date",
                f"({start}) is in the future",
                "set start_date to the first day of activity to export",
            )
        end = read.optional_text("end_date")
        if end is not None and _day(end, "end_date") < start:
            raise read.bad(
                "end_date",
                f"({end[:10]}) is before start_date ({start})",
                "set end_date to start_date or later, or leave it out (today)",
            )
        read.writable_folder("temp_dir")
        Limits.from_config(self.config)
        if not self.enabled_vendors():
            keys = ", ".join(vendor.key for vendor in VENDORS)
            raise ConfigurationError(
                "no vendor is configured",
                vendor=TAP,
                action=f"add the settings object of one of: {keys}",
            )
        for vendor in self.enabled_vendors():
            self.settings_of(vendor)

    @classmethod
    @override
    def invoke(cls, **kwargs: Any) -> None:
        """Run the sync; the SDK's multi-line config-validation report becomes one line."""
        try:
            super().invoke(**kwargs)
        except ConfigValidationError as exc:
            raise cli.config_validation_error(exc) from None

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, ended by `cli.run`: exit codes, one-line errors, the summary."""
        command = super().get_singer_command()
        sdk_main = command.main

        def main(*args: Any, **kwargs: Any) -> Any:
            cli.run(lambda: sdk_main(*args, **kwargs))

        command.main = main  # type: ignore[method-assign]
        return command

    @override
    def _setup_signal_handlers(self) -> None:
        """Keep `cli`'s handlers: the SDK's would end an interrupted run with exit code 0."""

    def enabled_vendors(self) -> list[VendorSpec[Any, Any]]:
        """Vendors whose settings object is present."""
        return [vendor for vendor in VENDORS if self.config.get(vendor.key)]

    @override
    def discover_streams(self) -> list[Stream]:
        """Streams of every vendor whose settings are present; sources are built on first use."""
        streams: list[Stream] = []
        for vendor in self.enabled_vendors():
            streams += vendor.discover(
                self, partial(self.settings_of, vendor), self.sync_context, self.start_jobs
            )
        return streams

    def start_jobs(self) -> None:
        """Once per sync, when the first stream needs its vendor: start every vendor's jobs.

        The SDK syncs streams one after another (and `sync_all` is final), so this is the first
        moment a sync is known to run; from here every vendor's jobs run side by side.
        """
        if self._jobs_started:
            return
        self._jobs_started = True
        slots = {
            id(stream.source): stream.source
            for stream in self.streams.values()
            if isinstance(stream, ExportStream)
        }
        for slot in slots.values():
            slot.start()

    def settings_of(self, vendor: VendorSpec[Any, Any]) -> Any:
        """A vendor's typed settings (read once; already checked by `check_settings`)."""
        if vendor.key not in self._vendor_settings:
            self._vendor_settings[vendor.key] = vendor.read_settings(self.config[vendor.key])
        return self._vendor_settings[vendor.key]

    def sync_context(self, streams: Sequence[ExportStream]) -> SyncContext:
        """What a vendor's source needs from this sync (its own streams among them)."""
        end = self.config.get("end_date")
        return SyncContext(
            state=cast(dict[str, Any], self.state),
            checkpoint=self.checkpoint,
            start_date=_day(str(self.config["start_date"]), "start_date"),
            end_date=None if end is None else _day(str(end), "end_date"),
            temp_dir=self.config.get("temp_dir") or os.environ.get("TMPDIR"),
            limits=Limits.from_config(self.config),
            streams=streams,
            jobs=self._jobs,
        )

    def checkpoint(self) -> None:
        """Emit STATE now (skipped by the SDK when nothing changed)."""
        write_state_now(self)


if __name__ == "__main__":
    TapEmailTracking.cli()
