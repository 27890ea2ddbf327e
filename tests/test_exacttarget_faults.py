"""ExactTarget faults: the real tap CLI against a misbehaving sandbox.

Every fault either heals inside the run (retries, resumed downloads: exit 0, full data) or stops
the run loudly: exit code non-zero and one ERROR line "ExactTarget / <stream> (<batch or file>):
<what>. What to do: <action>". Then the STATE left behind, run again once the fault is gone,
must give the full, exact data set, and the batch bookkeeping must match what the message said:
a failed or damaged batch is dropped (the next run submits a new one), a slow batch or a failed
download keeps its id (the next run polls or fetches the same batch).

The sync submits the batches of all three windows at its start (up to `max_jobs_in_flight`, 4),
so when window 1 fails the batches of windows 2 and 3 are in STATE too: they stay there and the
next run resumes them. Faults of one batch are aimed at window 1 (`only_windows`).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap
from .test_exacttarget_flow import assert_matches_truth
from .test_exacttarget_resume import WINDOW_1, WINDOW_2, WINDOW_3, in_flight_windows

LEDGER = "_exacttarget_batches"
FIRST_STREAM = "exacttarget_bounces"  # streams sync in name order
FIRST_BATCH = "979804"
# The batches a sync submits at its start, one per window, in plan order.
BATCHES = {WINDOW_1: FIRST_BATCH, WINDOW_2: "979805", WINDOW_3: "979806"}
LATER_BATCHES = {WINDOW_2: "979805", WINDOW_3: "979806"}
ERROR_LINE = re.compile(
    r"^ExactTarget( / (?P<stream>\w+))?( \((?P<subject>.+?)\))?: .+\. What to do: .+"
)


def error_message(run: TapRun) -> str:
    """The tap's one-line error: the message of the ERROR log line that says what to do."""
    assert run.returncode != 0, "the run should have failed"
    lines = [
        line.split(" | ", 3)[-1]
        for line in run.stderr.splitlines()
        if " | ERROR " in line and "What to do: " in line
    ]
    assert lines, run.stderr[-3000:]
    message = lines[0]
    assert ERROR_LINE.match(message), message
    return message


def kept_batches(run: TapRun) -> dict[tuple[date, date], str]:
    """Activity window -> batch id of every batch the run's last STATE keeps."""
    return in_flight_windows(run.last_state)


def aim_at_first_window(sandbox: Sandbox) -> None:
    """The batch faults switched on hit window 1's batches only."""
    sandbox.et_api.faults.only_windows = {WINDOW_1}


def submitted_windows(sandbox: Sandbox, since: int = 0) -> list[tuple[date, date]]:
    return [r["daterange"] for r in sandbox.et_api.requests[since:] if r["action"] == "BulkAsync"]


def polled_batches(sandbox: Sandbox, since: int = 0) -> set[str]:
    return {r["batch_id"] for r in sandbox.et_api.requests[since:] if r["action"] == "inquire"}


def recover(
    sandbox: Sandbox,
    tmp_path: Path,
    failed: TapRun,
    config: dict[str, Any] | None = None,
) -> TapRun:
    """Run again from the failed run's last STATE (fault cleared): the union is the truth."""
    again = run_tap(tmp_path / "again", config or sandbox.tap_config(), failed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_matches_truth(sandbox, failed, again)
    final = again.last_state
    assert final is not None
    assert final["bookmarks"][LEDGER] == {}
    return again


def assert_resumed_every_batch(sandbox: Sandbox, since: int) -> None:
    """The run after `since` polled all three batches again and submitted no window."""
    assert submitted_windows(sandbox, since) == []
    assert polled_batches(sandbox, since) == set(BATCHES.values())
    assert sandbox.et_api.submissions == 3


def assert_resubmitted_first_window(
    sandbox: Sandbox, since: int, submitted_before: int = 3
) -> None:
    """The run after `since` submitted window 1 afresh, once, and resumed windows 2 and 3.

    It never polled a forgotten batch of window 1, and submitted nothing for windows 2 and 3
    (their batches were polled, not polled and then replaced).
    """
    fresh = str(int(FIRST_BATCH) + submitted_before)
    assert submitted_windows(sandbox, since) == [WINDOW_1]
    assert polled_batches(sandbox, since) == {*LATER_BATCHES.values(), fresh}
    assert sandbox.et_api.submissions == submitted_before + 1


# -- the XML API --------------------------------------------------------------------------------


def test_wrong_exacttarget_password(sandbox: Sandbox, tmp_path: Path) -> None:
    failed = run_tap(tmp_path / "failed", sandbox.tap_config(password="not-the-password"))
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM}: ")
    assert "Tracking BulkAsync submit was refused" in message
    assert "Invalid username or password" in message
    assert "check exacttarget.username and exacttarget.password" in message
    assert "AuthenticationError" in failed.stderr
    assert sandbox.et_api.submissions == 0
    assert failed.records == {}
    recover(sandbox, tmp_path, failed)


def test_batch_status_error_drops_the_batch(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.batch_error = True
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (job {FIRST_BATCH}, activity 1/1/2024")
    assert "ended with status 'Error'" in message
    assert "re-run the sync to submit a new job" in message
    # The failed batch is forgotten (it can never deliver); the other windows' batches stay.
    assert kept_batches(failed) == LATER_BATCHES

    sandbox.et_api.faults.batch_error = False
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


def test_batch_past_the_deadline_is_kept_and_resumed(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.never_completes = True
    failed = run_tap(tmp_path / "failed", sandbox.tap_config(job_deadline_seconds=0.3))
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (job {FIRST_BATCH}, activity 1/1/2024")
    assert "still 'Processing'" in message
    assert "the job id is kept in state and will be polled again, not resubmitted" in message
    assert "job_deadline_seconds" in message
    assert kept_batches(failed) == BATCHES  # every batch is kept, not only the late one

    sandbox.et_api.faults.never_completes = False
    since = len(sandbox.et_api.requests)
    again = recover(sandbox, tmp_path, failed)
    for batch in BATCHES.values():
        assert f"resuming job {batch}" in again.stderr
    assert_resumed_every_batch(sandbox, since)


def test_unknown_status_is_tolerated_then_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.unknown_status = True
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (job {FIRST_BATCH}, activity 1/1/2024")
    assert "kept answering an unknown status 'Pending Review'" in message
    assert "re-run the sync to submit a new job" in message
    warnings = [
        line
        for line in failed.stderr.splitlines()
        if "WARNING" in line and "unknown status" in line
    ]
    assert len(warnings) == 10  # the default limit
    assert all(f"job {FIRST_BATCH} answered" in line for line in warnings)
    assert kept_batches(failed) == LATER_BATCHES

    sandbox.et_api.faults.unknown_status = False
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


def test_http_500_then_429_are_retried(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.http_errors = [500, 429]
    run = run_tap(tmp_path / "run", sandbox.tap_config(max_attempts=3))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(sandbox, run)
    assert "failed with HTTP 500 (attempt 1 of 3)" in run.stderr
    assert "failed with HTTP 429 (attempt 2 of 3)" in run.stderr
    assert sandbox.et_api.submissions == 3


def test_http_errors_beyond_max_attempts_fail_loudly(sandbox: Sandbox, tmp_path: Path) -> None:
    """The sync's start submits first: its failure pauses ExactTarget (a WARNING), and the
    first stream tries again with max_attempts of its own, so four 503s in a row fail the run."""
    sandbox.et_api.faults.http_errors = [503] * 4
    failed = run_tap(tmp_path / "failed", sandbox.tap_config(max_attempts=2))
    message = error_message(failed)
    paused = [
        line
        for line in failed.stderr.splitlines()
        if " | WARNING " in line and "its export jobs are paused until its streams run" in line
    ]
    assert len(paused) == 1, paused
    assert "failed 2 times, last with HTTP 503" in paused[0]
    assert failed.stderr.count("failed with HTTP 503 (attempt 1 of 2)") == 2
    assert sandbox.et_api.faults.http_errors == []
    assert message.startswith(f"ExactTarget / {FIRST_STREAM}: ")
    assert "Tracking BulkAsync submit to http://" in message
    assert "failed 2 times, last with HTTP 503" in message
    assert "re-run" in message.split("What to do:")[1]
    assert "TransportError" in failed.stderr
    assert sandbox.et_api.submissions == 0
    recover(sandbox, tmp_path, failed)


# -- the result file ----------------------------------------------------------------------------


def test_wrong_file_site_password_keeps_the_batch(sandbox: Sandbox, tmp_path: Path) -> None:
    failed = run_tap(tmp_path / "failed", sandbox.tap_config(file_password="not-the-password"))
    message = error_message(failed)
    result_file = sandbox.et_api.files[0].name
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (sftp://127.0.0.1:")
    assert f"/{result_file})" in message
    assert f"refused the login of user {sandbox.credentials.file_username!r}" in message
    assert "file_username" in message
    assert "file_password" in message
    assert "AuthenticationError" in failed.stderr
    # The batches are fine: keep them, so the next run downloads their files instead of
    # exporting again.
    assert kept_batches(failed) == BATCHES

    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resumed_every_batch(sandbox, since)


def test_file_site_errors_name_the_real_config_keys(sandbox: Sandbox, tmp_path: Path) -> None:
    failed = run_tap(tmp_path / "failed", sandbox.tap_config(file_password="not-the-password"))
    message = error_message(failed)
    assert "exacttarget.file_username" in message
    assert "exacttarget.file_password" in message


def test_truncated_zip_drops_the_batch(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.truncate_zip = True
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    result_file = sandbox.et_api.files[0].name
    assert result_file.endswith(".zip")
    assert message.startswith(
        f"ExactTarget / {FIRST_STREAM} (batch {FIRST_BATCH}, file {result_file}, activity 1/1/2024"
    )
    assert "is damaged" in message
    # The advice matches what the next run does: the batch is not kept, a new export is requested.
    assert "re-run the sync" in message
    assert "kept in state" not in message
    assert "CorruptFileError" in failed.stderr
    assert failed.records == {}  # nothing of a damaged export is emitted
    # The same file would fail again: window 1 is exported afresh; windows 2 and 3 stay.
    assert kept_batches(failed) == LATER_BATCHES

    sandbox.et_api.faults.truncate_zip = False
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


def test_malformed_xml_names_line_and_column(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.malformed_xml = True
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    result_file = sandbox.et_api.files[0].name
    assert message.startswith(
        f"ExactTarget / {FIRST_STREAM} (batch {FIRST_BATCH}, file {result_file}, activity 1/1/2024"
    )
    assert re.search(r"malformed XML at line \d+, column \d+: ", message), message
    assert "state was not advanced" in message
    assert "CorruptFileError" in failed.stderr
    assert kept_batches(failed) == LATER_BATCHES
    for state in failed.states:
        assert "next_window_start" not in state["bookmarks"].get(FIRST_STREAM, {})

    sandbox.et_api.faults.malformed_xml = False
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


def test_a_dropped_download_resumes_by_itself(sandbox: Sandbox, tmp_path: Path) -> None:
    """Plain FTP cuts the transfer at exactly 4 KB; the retry continues from there."""
    sandbox.download_faults.arm(drop_after_bytes=4096, times=1)
    run = run_tap(tmp_path / "run", sandbox.tap_config("ftp"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(sandbox, run)
    assert sandbox.download_faults.resumed_downloads >= 1
    assert "resuming bulkasync_" in run.stderr
    assert "at byte 4096" in run.stderr
    assert sandbox.et_api.submissions == 3


def test_drops_beyond_max_attempts_fail_and_keep_the_batch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.download_faults.arm(drop_after_bytes=4096, times=1000)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config("ftp", max_attempts=2))
    message = error_message(failed)
    result_file = sandbox.et_api.files[0].name
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (ftp://127.0.0.1:")
    assert f"downloading {result_file!r} failed 2 times in a row" in message
    assert "re-run the sync" in message
    assert "max_attempts" in message
    assert "TransportError" in failed.stderr
    assert sandbox.download_faults.downloads_started == 2
    assert kept_batches(failed) == BATCHES

    sandbox.download_faults.reset()
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed, sandbox.tap_config("ftp", max_attempts=2))
    assert_resumed_every_batch(sandbox, since)


# -- the config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("window_days", 9, ["window_days is 9, outside 1..7", "exacttarget.window_days"]),
        (
            "timezone",
            "Mars/Base",
            ["timezone 'Mars/Base' is not an IANA time zone", "America/Chicago"],
        ),
    ],
)
def test_invalid_config_value(
    sandbox: Sandbox, tmp_path: Path, setting: str, value: Any, says: list[str]
) -> None:
    failed = run_tap(tmp_path / "failed", sandbox.tap_config(**{setting: value}))
    message = error_message(failed)
    assert message.startswith("ExactTarget")
    for text in says:
        assert text in message
    assert "ConfigurationError" in failed.stderr
    assert sandbox.et_api.requests == []
    assert failed.records == {}
    recover(sandbox, tmp_path, failed)
