"""impact.com misbehaving on request: one clear error naming impact.com, the stream, the job and
the next step (or a retried recovery), and state that resumes to the full, exact data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vendor_sandbox.sandbox import Sandbox, SandboxCredentials

from .conftest import TapRun, run_tap
from .test_impact_flow import LEDGER, assert_complete, config


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", acoustic=None, pinpointe=None, mailkit=None) as sandbox:
        yield sandbox


def error_line(run: TapRun) -> str:
    lines = [line for line in run.stderr.splitlines() if "ERROR" in line and "| ERROR" in line]
    assert lines, run.stderr[-3000:]
    return lines[-1]


def job_of(box: Sandbox, unit: str) -> str:
    return [e.job_id for e in box.impact_api.submission_log if e.unit == unit][-1]


def test_a_wrong_token_names_the_settings_and_is_not_retried(box: Sandbox, tmp_path: Path) -> None:
    run = run_tap(tmp_path / "run", config(box, auth_token="wrong-token-77"))
    assert run.returncode == 1
    line = error_line(run)
    assert "impact.com" in line
    assert "HTTP 401" in line
    assert "impact.account_sid and impact.auth_token" in line
    assert len(box.impact_api.requests) == 1
    assert "wrong-token-77" not in run.stdout + run.stderr


def test_a_scoped_token_names_the_permission(box: Sandbox, tmp_path: Path) -> None:
    box.impact_api.faults.scoped_endpoints = {"ClickExport"}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    line = error_line(run)
    assert "HTTP 403" in line
    assert "scoped token" in line
    assert "impact_clicks" in line


def test_a_schedule_answered_200_with_status_error_quotes_impact(
    box: Sandbox, tmp_path: Path
) -> None:
    box.impact_api.faults.reject_next = 1
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    line = error_line(run)
    assert "ClickExport of clicks of program 12001 on 2024-01-01 was refused" in line
    assert "the export could not be scheduled" in line
    assert (run.last_state or {"bookmarks": {}})["bookmarks"].get(LEDGER, {}).get(
        "click:12001:2024-01-01"
    ) is None


@pytest.mark.parametrize(
    ("fault", "word"), [("fail_units", "FAILED"), ("cancel_units", "CANCELLED")]
)
def test_a_failed_or_cancelled_job_names_it_and_the_next_run_exports_it_again(
    box: Sandbox, tmp_path: Path, fault: str, word: str
) -> None:
    unit = "click:12002:2024-01-02"
    getattr(box.impact_api.faults, fault).add(unit)
    bad = run_tap(tmp_path / "bad", config(box))
    assert bad.returncode == 1
    line = error_line(bad)
    assert "impact.com / impact_clicks" in line
    assert f"job {job_of(box, unit)}" in line
    assert f"'{word}'" in line
    assert unit not in bad.last_state["bookmarks"][LEDGER]
    getattr(box.impact_api.faults, fault).clear()
    again = run_tap(tmp_path / "again", config(box), state=bad.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete(box, bad, again)


def test_a_429_storm_is_waited_out(box: Sandbox, tmp_path: Path) -> None:
    box.impact_api.faults.storm = 2
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)
    assert "failed with HTTP 429" in run.stderr


def test_a_dropped_download_resumes(box: Sandbox, tmp_path: Path) -> None:
    box.impact_api.download_faults.arm(1000, times=1)
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)
    assert box.impact_api.download_faults.resumed_downloads == 1


def test_the_auth_token_never_appears_in_any_output(tmp_path: Path) -> None:
    token = "Imp+S3cret/token=="
    creds = SandboxCredentials(impact_auth_token=token)
    with Sandbox(
        tmp_path / "box", acoustic=None, pinpointe=None, mailkit=None, credentials=creds
    ) as box:
        box.impact_api.faults.fail_units = {"click:12001:2024-01-03"}
        runs = [run_tap(tmp_path / "failed", config(box))]
        runs.append(run_tap(tmp_path / "refused", config(box, auth_token=token + "x")))
    for run in runs:
        for spelling in (token, token.replace("/", "\\/"), "SW1wK1MzY3JldC90b2tlbj09"):
            assert spelling not in run.stdout + run.stderr
    assert [r.returncode for r in runs] == [1, 1]
