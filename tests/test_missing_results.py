"""A result that is missing or refused for safety forgets its job; the next run submits it afresh.

The real tap CLI against the sandbox: the vendor announces a result file that is not on the file
site (it expired), or a name that would leave the folder. A missing file is taken for an expired
one: the window's job is submitted again once within the run, and when that job's file is missing
too the run fails. Each failing run fails loudly and forgets the window's job at once, while the
jobs of the other windows (submitted ahead) stay in state; the next run (fault gone) submits the
one window again, resumes the others, and delivers the exact data set. The fault is window 1's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from vendor_sandbox.acoustic.xmlapi import FIRST_JOB_ID
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap
from .test_acoustic_raw_and_resume import LEDGER as ACOUSTIC_LEDGER
from .test_acoustic_raw_and_resume import assert_raw_matches_truth, raw_config
from .test_exacttarget_faults import (
    FIRST_BATCH,
    FIRST_STREAM,
    LATER_BATCHES,
    aim_at_first_window,
    assert_resubmitted_first_window,
    error_message,
    kept_batches,
    recover,
    submitted_windows,
)
from .test_exacttarget_flow import assert_matches_truth
from .test_exacttarget_resume import WINDOW_1, WINDOW_2, WINDOW_3

ACOUSTIC_STREAM = "acoustic_email_events"
RESUBMITTED = "jobs submitted again (expired or not found)"
RRDE_DAY_1 = date(2024, 1, 1)
RRDE_DAYS = [RRDE_DAY_1 + timedelta(days=n) for n in range(7)]  # one RRDE window a day


def rrde_jobs_kept(run: TapRun) -> dict[date, str]:
    """Window start -> job id of every RRDE job the run's last STATE keeps."""
    ledger = (run.last_state or {}).get("bookmarks", {}).get(ACOUSTIC_LEDGER, {})
    return {date.fromisoformat(e["activity_start"]): str(e["job_id"]) for e in ledger.values()}


@pytest.fixture
def acoustic(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        yield box


# -- ExactTarget: the Batch Inquire file name ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["sftp", "ftp"])
def test_exacttarget_missing_result_forgets_the_batch(
    sandbox: Sandbox, tmp_path: Path, protocol: str
) -> None:
    sandbox.et_api.faults.delete_result = True
    aim_at_first_window(sandbox)
    config = sandbox.tap_config(protocol)
    failed = run_tap(tmp_path / "failed", config)
    message = error_message(failed)
    # Window 1's file was missing: its batch was replaced once (after the batches submitted
    # ahead), and the replacement's file was missing too. The error names the second file.
    assert submitted_windows(sandbox) == [WINDOW_1, WINDOW_2, WINDOW_3, WINDOW_1]
    second = str(int(FIRST_BATCH) + 3)
    assert f"ExactTarget: job {FIRST_BATCH} for activity 1/1/2024-1/7/2024" in failed.stderr
    assert "is gone (its result is not on the file site: " in failed.stderr
    assert "it is replaced once" in failed.stderr
    assert f"ExactTarget: end-of-run summary: 1 {RESUBMITTED}" in failed.stderr
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (")
    assert f"the file {sandbox.et_api.filename_for(second)!r} is not in the folder" in message
    assert "the job that announced it is forgotten and a new one is submitted" in message
    assert "RemoteFileMissingError" in failed.stderr
    assert kept_batches(failed) == LATER_BATCHES  # both of window 1's batches are forgotten

    sandbox.et_api.faults.delete_result = False
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed, config)
    assert_resubmitted_first_window(sandbox, since, submitted_before=4)


def test_an_exacttarget_result_that_expired_once_is_replaced_within_the_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Only the first batch's file expires: the run heals itself with one more batch."""
    sandbox.et_api.faults.expire_results = 1
    run = run_tap(tmp_path / "run", sandbox.tap_config())
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(sandbox, run)
    assert submitted_windows(sandbox) == [WINDOW_1, WINDOW_2, WINDOW_3, WINDOW_1]
    assert f"job {FIRST_BATCH} for activity 1/1/2024-1/7/2024" in run.stderr
    assert f"ExactTarget: end-of-run summary: 1 {RESUBMITTED}" in run.stderr
    assert kept_batches(run) == {}


# No local file can hold a name over 255 bytes: refused, not retried as a network error.
TOO_LONG = "a" * 5000 + ".zip"
TOO_LONG_UTF8 = "é" * 128 + ".zip"  # 260 bytes in 132 characters


@pytest.mark.parametrize(
    "name", ["../../etc/cron.d/x.zip", "/etc/passwd", "a\\..\\..\\b.zip", TOO_LONG, TOO_LONG_UTF8]
)
def test_exacttarget_refused_result_name_forgets_the_batch(
    sandbox: Sandbox, tmp_path: Path, name: str
) -> None:
    sandbox.et_api.faults.announce_name = name
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (")
    assert f"refused the result file name {name!r}" in message
    assert "a new one is submitted" in message
    assert "RefusedFileNameError" in failed.stderr
    assert kept_batches(failed) == LATER_BATCHES  # refused is not missing: not replaced
    assert sandbox.download_faults.downloads_started == 0  # nothing was fetched

    sandbox.et_api.faults.announce_name = None
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


# -- Acoustic RRDE: the FILE_PATH ------------------------------------------------------------------


def rrde_failure(box: Sandbox, tmp_path: Path, *, submitted: int) -> tuple[str, TapRun]:
    """Run once against day 1's fault: the ERROR line, and the run (day 1's job forgotten).

    Days 1-4 are submitted at the start and days 5-7 as soon as 1-4 are done; `submitted` is
    how many jobs the run submitted in all. Every other day's job stays in state.
    """
    failed = run_tap(tmp_path / "failed", raw_config(box))
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if "What to do: " in line]
    assert errors, failed.stderr[-3000:]
    assert f"Acoustic / {ACOUSTIC_STREAM} (" in errors[0]
    assert sorted(rrde_jobs_kept(failed)) == RRDE_DAYS[1:]
    assert box.acoustic_api.rrde_submissions == submitted  # type: ignore[union-attr]
    return errors[0], failed


def heal(box: Sandbox, tmp_path: Path, failed: TapRun) -> None:
    """The next run submits day 1 again, resumes the other days' jobs, and delivers every row."""
    before = box.acoustic_api.rrde_submissions  # type: ignore[union-attr]
    healed = run_tap(tmp_path / "healed", raw_config(box), state=failed.last_state)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert box.acoustic_api.rrde_submissions == before + 1  # type: ignore[union-attr]
    for job_id in rrde_jobs_kept(failed).values():
        assert f"resuming job {job_id}" in healed.stderr
    assert_raw_matches_truth(box, healed)


def test_acoustic_rrde_missing_result_forgets_the_job(acoustic: Sandbox, tmp_path: Path) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    api.faults.rrde_delete_result = True
    api.faults.rrde_only_days = {RRDE_DAY_1}
    # 7 days, and day 1 once more: its first job's file was gone.
    error, failed = rrde_failure(acoustic, tmp_path, submitted=8)
    assert "is gone (its result is not on the file site: " in failed.stderr
    assert f"Acoustic: end-of-run summary: 1 {RESUBMITTED}" in failed.stderr
    second = api.rrde_job(str(FIRST_JOB_ID + 7))  # after the seven days' jobs
    assert second is not None
    assert second["start"].date() == RRDE_DAY_1
    assert f"{second['file_path']!r} is not in the folder '/download'" in error
    assert "the job that announced it is forgotten and a new one is submitted" in error
    api.faults.rrde_delete_result = False
    heal(acoustic, tmp_path, failed)


@pytest.mark.parametrize(
    "path",
    ["../../home/admin/.ssh/x.zip", "/download/..\\x.zip", "/etc/x.zip", f"/download/{TOO_LONG}"],
)
def test_acoustic_rrde_refused_file_path_forgets_the_job(
    acoustic: Sandbox, tmp_path: Path, path: str
) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    api.faults.rrde_announce_path = path
    api.faults.rrde_only_days = {RRDE_DAY_1}
    error, failed = rrde_failure(acoustic, tmp_path, submitted=7)  # refused: not replaced
    assert "refused the result file name" in error
    assert acoustic.download_faults.downloads_started == 0
    api.faults.rrde_announce_path = None
    heal(acoustic, tmp_path, failed)
