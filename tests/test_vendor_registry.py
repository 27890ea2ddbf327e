"""The tap knows vendors only through `vendors/registry.py`: schema, checks, streams follow it."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tap_emailtracking.common_settings import JobSettings
from tap_emailtracking.errors import ConfigurationError
from tap_emailtracking.streams import ExportStream
from tap_emailtracking.tap import TapEmailTracking
from tap_emailtracking.vendors.exacttarget.export import ExactTargetExports
from tap_emailtracking.vendors.exacttarget.settings import ExactTargetSettings
from tap_emailtracking.vendors.registry import VENDOR_PACKAGES, VENDORS
from tap_emailtracking.vendors.spec import SourceSlot, VendorSpec

from .conftest import discover

# The least each vendor needs to be enabled; nothing here is contacted.
_MINIMAL: dict[str, dict[str, Any]] = {
    "exacttarget": {
        "username": "u",
        "password": "p",
        "file_username": "f",
        "file_password": "fp",
        "file_protocol": "ftp",
    },
    "acoustic": {
        "client_id": "c",
        "client_secret": "s",
        "refresh_token": "r",
        "contact_source_id": "1",
    },
    "pinpointe": {
        "host": "na03.mypinpointe.com",
        "username": "u",
        "usertoken": "t",
        "notify_value": "exports@example.com",
    },
    "mailkit": {"client_id": "1", "client_md5": "m"},
    "impact": {"account_sid": "IR" + "x" * 32, "auth_token": "t"},
}
# Vendors whose units are export jobs share the job settings (Mailkit pages its raw functions).
JOB_VENDORS = ("exacttarget", "acoustic", "pinpointe", "impact")


def minimal(key: str) -> dict[str, Any]:
    """A fresh copy: the SDK fills schema defaults into the nested config objects it is given."""
    return copy.deepcopy(_MINIMAL[key])


def test_every_vendor_package_exports_a_complete_spec() -> None:
    assert [vendor.key for vendor in VENDORS] == list(VENDOR_PACKAGES)
    assert set(_MINIMAL) == set(VENDOR_PACKAGES), "add the new vendor to MINIMAL"
    for vendor in VENDORS:
        assert isinstance(vendor, VendorSpec)
        assert vendor.name
        assert vendor.description.endswith("Leave out to disable the vendor.")
        properties = vendor.schema["properties"]
        assert vendor.schema["required"], vendor.key
        assert set(vendor.schema["required"]) <= set(properties)
        assert {"request_timeout_seconds", "max_attempts"} <= set(properties), vendor.key
        assert vendor.streams, vendor.key
        settings = vendor.read_settings(minimal(vendor.key))
        if vendor.key in JOB_VENDORS:
            # The settings every vendor with export jobs shares come from one place.
            shared = {"poll_interval_seconds", "job_deadline_seconds", "max_jobs_in_flight"}
            assert shared <= set(properties), vendor.key
            assert isinstance(settings, JobSettings)
        assert callable(vendor.build_source)


def test_the_config_schema_has_every_vendor_and_nothing_else_by_hand() -> None:
    properties = TapEmailTracking.config_jsonschema["properties"]
    for vendor in VENDORS:
        entry = properties[vendor.key]
        assert entry["description"] == vendor.description
        assert entry["properties"] == vendor.schema["properties"]
        assert entry["type"] == ["object", "null"]


@pytest.mark.parametrize("key", VENDOR_PACKAGES)
def test_discovery_with_one_vendor_gives_only_its_streams_and_builds_no_source(
    key: str, tmp_path: Path
) -> None:
    tap = TapEmailTracking(config={"start_date": "2024-01-01", key: minimal(key)})
    streams = list(tap.streams.values())
    assert streams
    assert all(name.startswith(f"{key}_") for name in tap.streams)
    expected = {vendor.key: len(vendor.streams) for vendor in VENDORS}[key]
    assert len(streams) == expected
    slots = {id(stream.source): stream.source for stream in streams}  # type: ignore[attr-defined]
    assert len(slots) == 1, "a vendor's streams share one source"
    (slot,) = slots.values()
    assert not slot.built, "discovery must not build the vendor's source"
    assert sorted(map(id, slot.streams)) == sorted(map(id, streams))


@pytest.mark.parametrize("key", VENDOR_PACKAGES)
def test_the_cli_discovers_only_the_configured_vendors_streams(key: str, tmp_path: Path) -> None:
    catalog = discover(tmp_path, {"start_date": "2024-01-01", key: minimal(key)})
    names = {entry["tap_stream_id"] for entry in catalog["streams"]}
    assert names
    assert all(name.startswith(f"{key}_") for name in names), names


def test_without_a_vendor_the_message_lists_every_vendor_key() -> None:
    with pytest.raises(ConfigurationError) as raised:
        TapEmailTracking(config={"start_date": "2024-01-01"})
    message = str(raised.value)
    assert "no vendor is configured" in message
    for vendor in VENDORS:
        assert vendor.key in message.split("What to do:")[1]


def test_a_source_is_built_once_on_first_use_with_the_streams_that_joined() -> None:
    built: list[list[ExportStream]] = []

    def build(streams: Any) -> str:
        built.append(list(streams))
        return "source"

    slot: SourceSlot[str] = SourceSlot(build)
    assert not slot.built
    assert slot.get() == "source"
    assert slot.get() == "source"
    assert len(built) == 1
    assert slot.built


class FakeStream:
    """Only what the fan-out asks of a stream (no tap involved)."""

    def __init__(self, kind: str, *, selected: bool, finished: bool, bookmark: str | None):
        self.kind = kind
        self.selected = selected
        self.finished = finished
        self._bookmark = bookmark

    def bookmark(self) -> str | None:
        return self._bookmark


def test_the_exacttarget_fan_out_asks_its_streams_which_are_still_to_run() -> None:
    streams = [
        FakeStream("opens", selected=True, finished=False, bookmark="2024-03-05"),
        FakeStream("clicks", selected=True, finished=True, bookmark=None),
        FakeStream("bounces", selected=False, finished=False, bookmark=None),
    ]
    source = ExactTargetExports(
        ExactTargetSettings.from_config(minimal("exacttarget")),
        state={},
        checkpoint=lambda: None,
        start_date=date(2024, 3, 1),
        end_date=None,
        streams=streams,
    )
    assert source._pending() == {"opens": "2024-03-05"}
    streams[0].finished = True
    assert source._pending() == {}


def test_every_stream_property_declares_a_type() -> None:
    """Targets build columns from `type` (target-duckdb fails on a property without one)."""
    tap = TapEmailTracking(
        config={"start_date": "2024-01-01", **{key: minimal(key) for key in VENDOR_PACKAGES}}
    )
    untyped = [
        f"{stream.name}.{name}"
        for stream in tap.streams.values()
        for name, schema in stream.schema["properties"].items()
        if "type" not in schema
    ]
    assert len(tap.streams) > 20
    assert untyped == []
