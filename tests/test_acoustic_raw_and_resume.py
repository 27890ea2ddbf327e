"""Acoustic Raw Recipient Data Export end to end, kills and resumes, dropped downloads, secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vendor_sandbox.acoustic.data import AcousticDataSpec
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap, run_tap_until
from .expected_acoustic import rrde_expected, without_lineage
from .test_acoustic_flow import STREAM, assert_matches_truth, config, emitted_by_key

LEDGER = "_acoustic_jobs"


@pytest.fixture
def acoustic(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        yield box


def raw_config(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return box.tap_config(
        vendors=("acoustic",), acoustic_mode="raw_recipient_data", acoustic_overrides=overrides
    )


def assert_raw_matches_truth(box: Sandbox, *runs: TapRun) -> None:
    settings = raw_config(box)["acoustic"]
    want = rrde_expected(
        box.acoustic_truth("raw_recipient_data"),
        tuple(settings["custom_columns"]),
        ZoneInfo(settings["timezone"]),
    )
    got = emitted_by_key(*runs)
    assert not want.keys() - got.keys(), f"missing {len(want.keys() - got.keys())}"
    assert not got.keys() - want.keys(), f"unexpected {len(got.keys() - want.keys())}"
    for key, record in want.items():
        assert without_lineage(got[key]) == record, key


def test_a_full_raw_recipient_data_sync_delivers_every_row(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path, raw_config(acoustic))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_raw_matches_truth(acoustic, run)
    api = acoustic.acoustic_api
    assert api.rrde_submissions == 7  # one job per day (window_days 1), Jan 1-7
    final = run.last_state or {}
    assert final["bookmarks"][STREAM]["next_window_start"] == "2024-01-08"
    assert final["bookmarks"][LEDGER] == {}
    again = run_tap(tmp_path / "again", raw_config(acoustic), state=final)
    assert again.returncode == 0, again.stderr[-3000:]
    assert api.rrde_submissions == 8  # only the lookback day again
    assert_raw_matches_truth(acoustic, run, again)


def test_a_job_in_error_is_reported_and_the_next_run_resubmits(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    api = acoustic.acoustic_api
    api.faults.rrde_error = True
    failed = run_tap(tmp_path / "failed", raw_config(acoustic))
    assert failed.returncode != 0
    assert f"Acoustic / {STREAM} (job " in failed.stderr
    assert "'ERROR'" in failed.stderr
    assert "re-run the sync to submit a new job" in failed.stderr
    state = failed.last_state or {}
    assert state["bookmarks"][LEDGER] == {}
    api.faults.rrde_error = False
    healed = run_tap(tmp_path / "healed", raw_config(acoustic), state=state)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert_raw_matches_truth(acoustic, failed, healed)


def test_a_kill_while_a_job_runs_resumes_that_job(acoustic: Sandbox, tmp_path: Path) -> None:
    api = acoustic.acoustic_api
    api.polls_until_complete = 1_000_000  # RUNNING until the test says otherwise
    killed = run_tap_until(
        tmp_path / "killed",
        raw_config(acoustic),
        stop_on_message=lambda message, _: (
            message["type"] == "STATE" and bool(message["value"]["bookmarks"].get(LEDGER))
        ),
    )
    state = killed.last_state or {}
    (entry,) = state["bookmarks"][LEDGER].values()
    assert entry["result"].endswith(".zip")  # the file name is in state before polling
    submitted = api.rrde_submissions
    api.polls_until_complete = 1
    resumed = run_tap(tmp_path / "resumed", raw_config(acoustic), state=state)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming job {entry['job_id']}" in resumed.stderr
    assert api.rrde_submissions == submitted + 6  # the other six days only
    assert_raw_matches_truth(acoustic, killed, resumed)


def test_a_kill_mid_file_resumes_from_the_last_finished_file(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    killed = run_tap_until(
        tmp_path / "killed",
        config(acoustic),
        stop_on_message=lambda _, messages: sum(m["type"] == "RECORD" for m in messages) >= 400,
    )
    state = killed.last_state or {}
    done = state.get("bookmarks", {}).get(STREAM, {}).get("bex_files", {}).get("done", {})
    emitted_files = {r["source_file"] for r in killed.records.get(STREAM, [])}
    assert done.keys() < emitted_files  # the file being read when killed is not marked done
    resumed = run_tap(tmp_path / "resumed", config(acoustic), state=state)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not {r["source_file"] for r in resumed.records[STREAM]} & set(done)
    assert_matches_truth(acoustic, killed, resumed)


def test_a_dropped_sftp_download_resumes_within_the_run(tmp_path: Path) -> None:
    spec = AcousticDataSpec(events_per_hour=400)  # files of a few hundred KB
    with Sandbox(tmp_path / "sandbox", exacttarget=None, acoustic=spec) as box:
        sizes = [p.stat().st_size for p in (box.files_root / "download").glob("*.csv")]
        assert max(sizes) > 300_000
        box.download_faults.arm(drop_after_bytes=150_000, times=2)
        run = run_tap(tmp_path, config(box))
        assert run.returncode == 0, run.stderr[-3000:]
        assert box.download_faults.resumed_downloads >= 1
        assert_matches_truth(box, run)


def test_no_acoustic_secret_reaches_the_output(acoustic: Sandbox, tmp_path: Path) -> None:
    acoustic.acoustic_api.faults.expire_tokens_after_calls = 2  # several tokens in one run
    creds = acoustic.credentials
    oauth_login = run_tap(tmp_path / "oauth", config(acoustic))
    password_config = config(acoustic)
    password_config["acoustic"] = acoustic.acoustic_config("bex", sftp_login="password")
    password_login = run_tap(tmp_path / "password", password_config)
    for run in (oauth_login, password_login):
        assert run.returncode == 0, run.stderr[-3000:]
    secrets = [
        creds.acoustic_client_secret,
        creds.acoustic_refresh_token,
        creds.acoustic_ftp_password,
        *acoustic.acoustic_api.issued_tokens,
    ]
    assert len(acoustic.acoustic_api.issued_tokens) >= 2
    failing = run_tap(tmp_path / "bad", config(acoustic, client_secret="Wr0ng-client-secret"))
    assert failing.returncode != 0
    for run in (oauth_login, password_login, failing):
        output = run.stdout + run.stderr
        for secret in [*secrets, "Wr0ng-client-secret"]:
            assert secret not in output
