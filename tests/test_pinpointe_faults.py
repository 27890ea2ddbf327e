"""Pinpointe misbehaving on request: each fault gives one clear error (or a warned recovery) and
the state left behind resumes to the full, exact data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.pinpointe.data import PinpointeDataSpec
from vendor_sandbox.sandbox import Sandbox, SandboxCredentials

from .conftest import TapRun, run_tap
from .test_pinpointe_flow import LEDGER, assert_equals_truth, assert_union_equals_truth, config


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", acoustic=None, pinpointe=PinpointeDataSpec()) as sandbox:
        yield sandbox


def error_line(run: TapRun) -> str:
    """The one ERROR line a failed run ends with."""
    lines = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert lines, run.stderr[-3000:]
    return lines[-1]


def ledger(run: TapRun) -> dict[str, Any]:
    return dict(((run.last_state or {}).get("bookmarks", {})).get(LEDGER, {}))


def job_of(box: Sandbox, unit: str) -> str:
    (job_id,) = [e.job_id for e in box.pinpointe_api.submission_log if e.unit == unit][-1:]
    return job_id


def test_a_wrong_token_names_the_settings_to_check_and_is_not_retried(
    box: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path / "run", config(box, usertoken="not-the-token-4411"))
    assert run.returncode == 1
    line = error_line(run)
    assert "Pinpointe" in line
    assert "Unable to verify user credentials" in line
    assert "pinpointe.username and pinpointe.usertoken" in line
    assert "not-the-token-4411" not in run.stderr + run.stdout
    assert len(box.pinpointe_api.requests) == 1  # a refused login is never sent twice
    assert not box.pinpointe_api.submission_log


def test_a_token_revoked_during_the_sync_stops_it_and_keeps_the_jobs(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.faults.stall_units = {"send:5001"}
    stalled = run_tap(tmp_path / "stalled", config(box, job_deadline_seconds=1))
    assert stalled.returncode == 1
    kept = ledger(stalled)
    assert "send:5001" in kept
    box.pinpointe_api.faults.stall_units = set()
    box.pinpointe_api.faults.revoked_token = True
    refused = run_tap(tmp_path / "refused", config(box), state=stalled.last_state)
    assert refused.returncode == 1
    assert "pinpointe.usertoken" in error_line(refused)
    assert ledger(refused) == kept  # nothing is forgotten over a credentials failure
    box.pinpointe_api.faults.revoked_token = False
    resumed = run_tap(tmp_path / "resumed", config(box), state=refused.last_state)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ledger(resumed) == {}
    assert_union_equals_truth(box, stalled, resumed)


def test_an_errormessage_list_is_quoted_whole(box: Sandbox, tmp_path: Path) -> None:
    box.pinpointe_api.shapes.errormessage_list = True
    box.pinpointe_api.shapes.error_status = "ERROR"
    run = run_tap(tmp_path / "run", config(box, list_ids=["999"]))
    assert run.returncode == 1
    line = error_line(run)
    assert "Pinpointe" in line
    assert "GetListSubscribersAsync" in line
    assert "not found" in line
    assert "status ERROR" in line


def test_a_failed_job_names_its_job_and_the_next_run_exports_it_again(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.faults.fail_units = {"segment:2"}
    failed = run_tap(tmp_path / "failed", config(box))
    assert failed.returncode == 1
    line = error_line(failed)
    job_id = job_of(box, "segment:2")
    assert "pinpointe_segment_subscribers" in line
    assert f"job {job_id}" in line
    assert "segment 2" in line
    assert "'failed'" in line
    assert "segment:2" not in ledger(failed)  # a failed job is of no use: forgotten
    box.pinpointe_api.faults.fail_units = set()
    again = run_tap(tmp_path / "again", config(box), state=failed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_union_equals_truth(box, failed, again)


def test_a_job_that_never_finishes_hits_the_deadline_and_is_resumed_not_resubmitted(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.faults.stall_units = {"tag:2"}
    stalled = run_tap(tmp_path / "stalled", config(box, job_deadline_seconds=1))
    assert stalled.returncode == 1
    job_id = job_of(box, "tag:2")
    line = error_line(stalled)
    assert f"job {job_id}" in line
    assert "still 'processing'" in line
    assert "not resubmitted" in line
    assert ledger(stalled)["tag:2"]["job_id"] == job_id
    box.pinpointe_api.faults.stall_units = set()
    submitted = len(box.pinpointe_api.submission_log)
    resumed = run_tap(tmp_path / "resumed", config(box), state=stalled.last_state)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    later = [e.unit for e in box.pinpointe_api.submission_log[submitted:]]
    assert "tag:2" not in later
    assert f"resuming job {job_id}" in resumed.stderr
    assert_union_equals_truth(box, stalled, resumed)


def test_jobs_not_found_submits_the_job_again_once_with_a_warning(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.faults.forget_units = {"list:1": 1, "send:5004": 1}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run)
    units = Counter(e.unit for e in box.pinpointe_api.submission_log)
    assert units["list:1"] == units["send:5004"] == 2
    assert run.stderr.count("it is replaced once") == 2
    assert "2 jobs submitted again (expired or not found)" in run.stderr


def test_a_job_lost_twice_fails_naming_it(box: Sandbox, tmp_path: Path) -> None:
    box.pinpointe_api.faults.forget_units = {"segment:1": 2}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    line = error_line(run)
    assert "pinpointe_segment_subscribers" in line
    assert "lost the job or its result twice" in line
    box.pinpointe_api.faults.forget_units = {}
    again = run_tap(tmp_path / "again", config(box), state=run.last_state)
    assert again.returncode == 0
    assert_union_equals_truth(box, run, again)


def test_a_dropped_download_resumes_with_range(box: Sandbox, tmp_path: Path) -> None:
    box.pinpointe_api.download_faults.arm(3000, times=2)
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run)
    assert box.pinpointe_api.download_faults.resumed_downloads == 2


def test_a_malformed_result_fails_naming_the_file_and_the_next_run_asks_anew(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.faults.malformed_units = {"send:5003"}
    bad = run_tap(tmp_path / "bad", config(box))
    assert bad.returncode == 1
    line = error_line(bad)
    job_id = job_of(box, "send:5003")
    assert "pinpointe_newsletter_activity" in line
    assert f"job {job_id}" in line
    assert "send 5003" in line
    assert "malformed" in line or "cut short" in line or "ends inside" in line
    assert "send:5003" not in ledger(bad)  # the same file would fail again: forgotten
    box.pinpointe_api.faults.malformed_units = set()
    again = run_tap(tmp_path / "again", config(box), state=bad.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_union_equals_truth(box, bad, again)


def test_an_unknown_status_word_is_logged_once_then_fails_the_job(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.faults.unknown_status_units = {"tag:1"}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    assert run.stderr.count("unknown status word 'on hold'") == 1
    line = error_line(run)
    assert "kept answering an unknown status 'on hold'" in line
    assert "pinpointe_tag_subscribers" in line


def test_an_html_page_is_named_as_such(box: Sandbox, tmp_path: Path) -> None:
    box.pinpointe_api.faults.html_pages = 1
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    line = error_line(run)
    assert "Pinpointe" in line
    assert "an HTML page" in line
    assert "pinpointe.host" in line


def test_a_job_limit_puts_submissions_off_and_the_sync_completes(
    box: Sandbox, tmp_path: Path
) -> None:
    box.pinpointe_api.jobs.configure(limit=2)
    run = run_tap(tmp_path / "run", config(box, max_jobs_in_flight=5))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run)
    assert box.pinpointe_api.max_in_flight == 2
    assert box.pinpointe_api.rejected_submissions >= 1
    assert "job submissions put off" in run.stderr


def test_the_usertoken_never_appears_in_any_output(tmp_path: Path) -> None:
    token = "Pp-S3cret/Token+value=="
    creds = SandboxCredentials(pinpointe_usertoken=token)
    with Sandbox(
        tmp_path / "sandbox", acoustic=None, pinpointe=PinpointeDataSpec(), credentials=creds
    ) as box:
        box.pinpointe_api.faults.fail_units = {"list:2"}
        box.pinpointe_api.download_faults.arm(2000, times=1)
        runs = [
            run_tap(tmp_path / "failed", config(box, max_jobs_in_flight=2)),
            run_tap(tmp_path / "refused", config(box, usertoken="wrong-" + token)),
        ]
        box.pinpointe_api.faults.fail_units = set()
        runs.append(run_tap(tmp_path / "ok", config(box), state=runs[0].last_state))
    spellings = {token, token.replace("/", "\\/"), token.replace("/", "%2F").replace("+", "%2B")}
    for run in runs:
        for spelling in spellings:
            assert spelling not in run.stdout
            assert spelling not in run.stderr
    assert [run.returncode for run in runs] == [1, 1, 0]
    assert box.pinpointe_api.download_faults.resumed_downloads == 1
