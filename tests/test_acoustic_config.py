"""Acoustic settings that BEX cannot honour are refused at config validation, before any call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import run_tap

BASE: dict[str, Any] = {
    "client_id": "cid",
    "client_secret": "Acoustic-Secret-1",
    "refresh_token": "Acoustic-Refresh-1",
    "contact_source_id": "423251",
    # Nothing listens here: a run that got past validation would fail differently.
    "api_host": "http://127.0.0.1:9",
    "sftp_host": "127.0.0.1",
}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"custom_columns": ["a", "b", "c", "d", "e", "f"]}, "is too long"),
        ({"job_frequency_hours": 5}, "5 is not one of"),
        ({"file_format": "XLS"}, "'XLS' is not one of"),
        ({"event_types": ["emailOpen", "emailForward"]}, "'emailForward' is not one of"),
    ],
)
def test_invalid_job_definition_settings_fail_validation(
    tmp_path: Path, override: dict[str, Any], expected: str
) -> None:
    config = {"start_date": "2024-01-01", "acoustic": {**BASE, **override}}
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert "Config validation failed" in run.stderr
    assert expected in run.stderr
    assert not [m for m in run.messages if m["type"] == "RECORD"]
    for secret in ("Acoustic-Secret-1", "Acoustic-Refresh-1"):
        assert secret not in run.stderr + run.stdout


def test_bex_without_a_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    acoustic = {k: v for k, v in BASE.items() if k != "contact_source_id"}
    run = run_tap(tmp_path, {"start_date": "2024-01-01", "acoustic": acoustic})
    assert run.returncode != 0
    assert "Acoustic: acoustic.contact_source_id is missing: export_mode bex needs" in run.stderr
    assert "acoustic.contact_source_id" in run.stderr
