"""The shared export-job lifecycle, on a fake clock (no real waiting)."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from tap_emailtracking.errors import JobDeadlineError, JobFailedError
from tap_emailtracking.jobs import (
    ExportJob,
    JobLedger,
    JobRunner,
    JobState,
    JobStatus,
    PollPolicy,
    Unit,
)
from tap_emailtracking.windows import in_flight_windows


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedJob:
    """Answers the given statuses in order, then repeats the last one."""

    def __init__(self, *statuses: JobStatus) -> None:
        self.statuses = list(statuses)
        self.submitted = 0
        self.checked: list[str] = []

    def submit(self) -> str:
        self.submitted += 1
        return f"job-{self.submitted}"

    def check(self, job_id: str) -> JobStatus:
        self.checked.append(job_id)
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


PENDING = JobStatus(JobState.PENDING, "Scheduled")
RUNNING = JobStatus(JobState.RUNNING, "Processing", progress="40%")
DONE = JobStatus(JobState.DONE, "Complete", result="file.zip")


def make(state: dict[str, Any], **policy: Any) -> tuple[JobRunner, FakeClock, list[dict[str, Any]]]:
    clock = FakeClock()
    emitted: list[dict[str, Any]] = []

    def checkpoint() -> None:
        emitted.append(copy.deepcopy(state))

    ledger = JobLedger(state, "_v_jobs", checkpoint)
    runner = JobRunner(
        vendor="V",
        ledger=ledger,
        policy=PollPolicy(interval_seconds=10, max_interval_seconds=40, **policy),
        clock=clock,
        sleep=clock.sleep,
    )
    return runner, clock, emitted


def run_one(
    runner: JobRunner, key: str, job: ExportJob, *, stream: str | None, label: str
) -> JobStatus:
    """One unit through a one-slot pipeline: submit (or resume), wait, the final status."""
    return runner.pipeline([Unit(key, job, label, stream)], max_in_flight=1).wait(key)[1]


def test_job_id_is_in_state_before_the_first_poll() -> None:
    state: dict[str, Any] = {}
    runner, _, emitted = make(state)
    job = ScriptedJob(PENDING, RUNNING, DONE)
    seen_at_first_check: list[Any] = []
    original = job.check

    def check(job_id: str) -> JobStatus:
        if not seen_at_first_check:
            seen_at_first_check.append(list(emitted))
        return original(job_id)

    job.check = check  # type: ignore[method-assign]
    status = run_one(runner, "w1", job, stream="s", label="window 1")
    assert status.result == "file.zip"
    first_states = seen_at_first_check[0]
    assert first_states, "STATE must be emitted before polling starts"
    assert first_states[-1]["bookmarks"]["_v_jobs"]["w1"]["job_id"] == "job-1"


def test_polling_backs_off_up_to_the_maximum_interval() -> None:
    state: dict[str, Any] = {}
    runner, clock, _ = make(state)
    job = ScriptedJob(PENDING, PENDING, PENDING, PENDING, PENDING, DONE)
    run_one(runner, "w1", job, stream=None, label="w")
    assert clock.sleeps == [10, 15, 22.5, 33.75, 40]


def test_a_restarted_sync_resumes_the_job_in_state_instead_of_submitting() -> None:
    state: dict[str, Any] = {"bookmarks": {"_v_jobs": {"w1": {"job_id": "job-77"}}}}
    runner, _, _ = make(state)
    job = ScriptedJob(RUNNING, DONE)
    run_one(runner, "w1", job, stream=None, label="w")
    assert job.submitted == 0
    assert job.checked == ["job-77", "job-77"]


def test_failed_job_is_forgotten_and_raises_a_clear_error() -> None:
    state: dict[str, Any] = {}
    runner, _, emitted = make(state)
    job = ScriptedJob(PENDING, JobStatus(JobState.FAILED, "Error", detail="disk full"))
    with pytest.raises(JobFailedError) as caught:
        run_one(runner, "w1", job, stream="opens", label="window 1")
    message = str(caught.value)
    for part in ("V / opens", "job-1", "'Error'", "disk full", "re-run"):
        assert part in message
    assert state["bookmarks"]["_v_jobs"] == {}
    assert emitted[-1]["bookmarks"]["_v_jobs"] == {}


def test_deadline_keeps_the_job_for_the_next_run() -> None:
    state: dict[str, Any] = {}
    runner, clock, _ = make(state, deadline_seconds=100)
    with pytest.raises(JobDeadlineError) as caught:
        run_one(runner, "w1", ScriptedJob(RUNNING), stream="opens", label="window 1")
    assert "kept in state" in str(caught.value)
    assert state["bookmarks"]["_v_jobs"]["w1"]["job_id"] == "job-1"
    assert clock.now <= 100


def test_unknown_status_is_tolerated_then_fails() -> None:
    state: dict[str, Any] = {}
    runner, _, _ = make(state, unknown_status_limit=3)
    weird = JobStatus(JobState.UNKNOWN, "Pending Review")
    job = ScriptedJob(weird, weird, DONE)
    assert run_one(runner, "w1", job, stream=None, label="w").state is JobState.DONE
    runner2, _, _ = make({}, unknown_status_limit=3)
    with pytest.raises(JobFailedError, match="unknown status 'Pending Review'"):
        run_one(runner2, "w1", ScriptedJob(weird), stream=None, label="w")


def test_the_ledger_is_keyed_by_any_unit_and_keeps_the_vendors_info() -> None:
    state: dict[str, Any] = {}
    ledger = JobLedger(state, "_v_jobs", lambda: None)
    ledger.put("program=7;2024-01-01", "j1", activity_start="2024-01-01", activity_end="2024-01-01")
    ledger.put("list=42", "j2", list_id=42)
    ledger.put(
        "2024-01-02..2024-01-08", "j3", activity_start="2024-01-02", activity_end="2024-01-08"
    )
    entries = ledger.entries()
    assert entries["list=42"] == {"list_id": 42, "job_id": "j2"}
    entries["list=42"]["list_id"] = 0  # a copy: the caller cannot change STATE behind its back
    assert ledger.get("list=42") == {"list_id": 42, "job_id": "j2"}
    # A vendor whose units are windows derives them from its own fields; a list id is no window.
    assert in_flight_windows(ledger.entries()) == {
        date(2024, 1, 1): date(2024, 1, 1),
        date(2024, 1, 2): date(2024, 1, 8),
    }
    assert in_flight_windows(entries, start_field="from", end_field="to") == {}
