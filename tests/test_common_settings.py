"""Settings every vendor shares are declared once: one default, in the schema and in the code."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.common_settings import JobSettings, WindowSettings
from tap_emailtracking.errors import ConfigurationError
from tap_emailtracking.vendors.registry import VENDORS
from vendor_sandbox.sandbox import Sandbox

from .conftest import run_tap
from .test_config_checks import assert_refused, both, both_config  # noqa: F401 - fixture
from .test_vendor_registry import JOB_VENDORS, minimal

SHARED = {f.name for f in fields(JobSettings)}


def typed_value(settings: Any, name: str) -> Any:
    """Where a vendor's typed settings keep a setting (ExactTarget nests its file site)."""
    files = getattr(settings, "files", None)
    for holder, attribute in (
        (settings, name),
        (files, name),
        (files, name.removeprefix("file_")),
    ):
        if holder is not None and hasattr(holder, attribute):
            return getattr(holder, attribute)
    raise AttributeError(name)


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.key)
def test_every_schema_default_is_the_value_the_vendor_reads(vendor: Any) -> None:
    settings = vendor.read_settings(minimal(vendor.key))
    compared = set()
    for name, schema in vendor.schema["properties"].items():
        if "default" not in schema or name in minimal(vendor.key):
            continue
        try:
            value = typed_value(settings, name)
        except AttributeError:
            continue  # derived (Acoustic's pod becomes its hosts)
        assert (list(value) if isinstance(value, tuple) else value) == schema["default"], name
        compared.add(name)
    wanted = {"request_timeout_seconds", "max_attempts"}
    wanted |= SHARED if isinstance(settings, JobSettings) else set()
    wanted |= (
        {f.name for f in fields(WindowSettings)} if isinstance(settings, WindowSettings) else set()
    )
    wanted |= {"sftp_host_key_check"} & set(vendor.schema["properties"])
    assert wanted <= compared


def test_the_shared_schema_takes_its_defaults_from_the_dataclass() -> None:
    properties = {p.name: p.to_dict()[p.name] for p in JobSettings.job_properties()}
    assert set(properties) == SHARED
    for item in fields(JobSettings):
        assert properties[item.name]["default"] == item.default, item.name
    assert JobSettings.read_jobs(SettingsReader({}, vendor="V")) == JobSettings()
    assert JobSettings().max_jobs_in_flight == 4


def test_each_vendor_keeps_its_own_window_defaults() -> None:
    settings = {v.key: v.read_settings(minimal(v.key)) for v in VENDORS}
    assert (settings["exacttarget"].window_days, settings["exacttarget"].timezone) == (
        7,
        "America/Chicago",
    )
    assert (settings["acoustic"].window_days, settings["acoustic"].timezone) == (
        1,
        "America/New_York",
    )


@pytest.mark.parametrize(
    "vendor", [v for v in VENDORS if v.key in JOB_VENDORS], ids=lambda vendor: vendor.key
)
def test_max_jobs_in_flight_is_a_whole_number_from_1_to_50(vendor: Any) -> None:
    read = vendor.read_settings
    for value in (1, 50):
        assert (
            read({**minimal(vendor.key), "max_jobs_in_flight": value}).max_jobs_in_flight == value
        )
    for value in (0, 51, "4", 2.5):
        with pytest.raises(ConfigurationError) as raised:
            read({**minimal(vendor.key), "max_jobs_in_flight": value})
        assert f"{vendor.key}.max_jobs_in_flight" in str(raised.value)
        assert "a whole number between 1 and 50" in str(raised.value)


def test_a_poll_ceiling_below_the_first_wait_is_refused_naming_both() -> None:
    with pytest.raises(ConfigurationError) as raised:
        JobSettings.read_jobs(
            SettingsReader(
                {"poll_interval_seconds": 30, "poll_max_interval_seconds": 10},
                vendor="Acoustic",
                prefix="acoustic.",
            )
        )
    assert "acoustic.poll_max_interval_seconds (10) is below poll_interval_seconds (30)" in str(
        raised.value
    )


@pytest.mark.parametrize(("key", "value"), [("exacttarget", 0), ("acoustic", 51)])
def test_a_bad_max_jobs_in_flight_stops_the_run_at_once(
    both: Sandbox,  # noqa: F811 - the fixture
    tmp_path: Path,
    key: str,
    value: int,
) -> None:
    config = both_config(both)
    config[key]["max_jobs_in_flight"] = value
    named = f"{key}.max_jobs_in_flight"
    assert_refused(both, run_tap(tmp_path / "run", config), named, "between 1 and 50")
