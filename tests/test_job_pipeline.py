"""Many export jobs in flight: order, slots, STATE first, polling rounds, every outcome, kills.

A fake vendor whose jobs finish a set time after submission, on a fake clock (no real waiting).
The sandbox flows of both vendors run the same code (tests/test_jobs_side_by_side.py).
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from tap_emailtracking import summary
from tap_emailtracking.errors import (
    AuthenticationError,
    CorruptFileError,
    JobDeadlineError,
    JobFailedError,
    JobLimitReachedError,
    RemoteFileMissingError,
    TransportError,
    UnitPutOffError,
)
from tap_emailtracking.jobs import (
    JobLedger,
    JobPipeline,
    JobScheduler,
    JobState,
    JobStatus,
    PollPolicy,
    Submission,
    Unit,
)

LEDGER = "_v_jobs"


class Killed(BaseException):
    """The process died here (SIGKILL): nothing after this point happens."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.kill_after_sleeps: int | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.kill_after_sleeps is not None and len(self.sleeps) >= self.kill_after_sleeps:
            raise Killed
        self.sleeps.append(seconds)
        self.now += seconds


class FakeVendor:
    """Jobs finish `takes` seconds after submission; scripts force statuses per unit."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.jobs: dict[str, tuple[str, float, float]] = {}  # id -> unit, submitted, takes
        self.submissions: list[str] = []
        self.replays: list[str] = []
        self.checks: list[tuple[str, float]] = []  # (job id, time)
        self.batch_calls: list[list[str]] = []
        self.scripts: dict[str, list[JobStatus]] = {}
        self.first_check_state: list[dict[str, Any]] = []
        self.saved: list[dict[str, Any]] = []  # every STATE message, as a target saw it
        self.limit: int | None = None  # refuse submissions while this many jobs run
        self.refused = 0
        self.most_running = 0

    def running(self) -> int:
        """Jobs queued or running at the vendor now."""
        now = self.clock()
        return sum(submitted + takes > now for _, submitted, takes in self.jobs.values())

    def new_job(self, unit: str, takes: float) -> str:
        if self.limit is not None and self.running() >= self.limit:
            self.refused += 1
            raise JobLimitReachedError("too many jobs", vendor="V", action="wait")
        job_id = f"job-{len(self.jobs) + 1}"
        self.jobs[job_id] = (unit, self.clock(), takes)
        self.most_running = max(self.most_running, self.running())
        return job_id

    def status(self, job_id: str) -> JobStatus:
        if not self.first_check_state:
            self.first_check_state.append(copy.deepcopy(self.saved[-1] if self.saved else {}))
        if self.saved:  # every id polled is in the last STATE a target saw
            in_state = {e["job_id"] for e in self.saved[-1]["bookmarks"][LEDGER].values()}
            assert job_id in in_state, f"{job_id} polled before it was in STATE"
        self.checks.append((job_id, self.clock()))
        unit, submitted, takes = self.jobs[job_id]
        script = self.scripts.get(unit)
        if script:
            return script.pop(0)
        elapsed = self.clock() - submitted
        if elapsed >= takes:
            return JobStatus(JobState.DONE, "COMPLETED")  # the result came with the submission
        if elapsed < takes / 2:
            return JobStatus(JobState.PENDING, "QUEUED")
        return JobStatus(JobState.RUNNING, "RUNNING", progress=f"{100 * elapsed / takes:.0f}%")

    def check_many(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        self.batch_calls.append(list(job_ids))
        return {job_id: self.status(job_id) for job_id in job_ids if job_id in self.jobs}


class FakeJob:
    def __init__(self, vendor: FakeVendor, unit: str, takes: float) -> None:
        self.vendor, self.unit, self.takes = vendor, unit, takes

    def submit(self) -> Submission:
        job_id = self.vendor.new_job(self.unit, self.takes)
        self.vendor.submissions.append(self.unit)
        return Submission(job_id, result=f"{self.unit}.csv")

    def check(self, job_id: str) -> JobStatus:
        return self.vendor.status(job_id)


class ReplayableJob(FakeJob):
    def replay(self, job_id: str) -> Submission:
        self.vendor.replays.append(job_id)
        return Submission(self.vendor.new_job(self.unit, self.takes), result=f"{self.unit}-r.csv")


class BatchOnlyJob(FakeJob):
    def check(self, job_id: str) -> JobStatus:
        raise AssertionError("the batch check must be used")


def units(vendor: FakeVendor, takes: dict[str, float], kind: type[FakeJob] = FakeJob) -> list[Unit]:
    return [
        Unit(key, kind(vendor, key, t), f"unit {key}", "s", {"mine": key})
        for key, t in takes.items()
    ]


def make(
    state: dict[str, Any],
    vendor: FakeVendor,
    plan: list[Unit],
    *,
    max_in_flight: int = 4,
    batch: bool = False,
    kill_at_checkpoint: int | None = None,
    scheduler: JobScheduler | None = None,
    name: str = "V",
    **policy: Any,
) -> JobPipeline:
    def checkpoint() -> None:
        vendor.saved.append(copy.deepcopy(state))
        if kill_at_checkpoint is not None and len(vendor.saved) >= kill_at_checkpoint:
            raise Killed

    return JobPipeline(
        plan,
        vendor=name,
        ledger=JobLedger(state, LEDGER, checkpoint),
        policy=PollPolicy(interval_seconds=10, max_interval_seconds=40, **policy),
        max_in_flight=max_in_flight,
        check_many=vendor.check_many if batch else None,
        scheduler=scheduler or JobScheduler(clock=vendor.clock, sleep=vendor.clock.sleep),
    )


def consume(pipeline: JobPipeline, state: dict[str, Any], done: list[str]) -> None:
    """What a stream does: emit the unit's records, move the bookmark, forget the job."""
    for unit, status in pipeline:
        assert status.state is JobState.DONE
        done.append(unit.key)
        state["bookmarks"]["s"] = {"done": unit.key}
        pipeline.ledger.drop(unit.key)


@pytest.fixture
def vendor() -> FakeVendor:
    summary.reset()
    return FakeVendor(FakeClock())


def test_units_come_back_in_order_even_when_later_jobs_finish_first(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {}
    pipeline = make(state, vendor, units(vendor, {"a": 60, "b": 5, "c": 5}))
    handed: list[tuple[str, float, str | None]] = []
    for unit, status in pipeline:
        handed.append((unit.key, vendor.clock(), status.result))
    assert [key for key, _, _ in handed] == ["a", "b", "c"]
    assert [result for _, _, result in handed] == ["a.csv", "b.csv", "c.csv"]
    # b and c ran while a was awaited: they came back at once after a, with no further wait.
    assert handed[0][1] == handed[1][1] == handed[2][1] == pytest.approx(81.25)
    assert vendor.submissions == ["a", "b", "c"]
    # A job that is done is not polled again while it waits for its turn.
    b_id = next(i for i, (u, _, _) in vendor.jobs.items() if u == "b")
    assert [t for job_id, t in vendor.checks if job_id == b_id] == [0, 10]


def test_never_more_jobs_running_at_the_vendor_than_the_limit(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    plan = units(vendor, {k: 5 * (6 - i) for i, k in enumerate("abcdef")})
    pipeline = make(state, vendor, plan, max_in_flight=2)
    done: list[str] = []
    consume(pipeline, state, done)
    assert done == list("abcdef")
    assert vendor.most_running == 2
    assert sorted(vendor.submissions) == list("abcdef")


def test_a_job_seen_done_frees_its_slot_before_its_unit_is_consumed(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {}
    pipeline = make(state, vendor, units(vendor, {"a": 5, "b": 5, "c": 5}), max_in_flight=1)
    unit, _ = pipeline.wait("a")
    assert unit.key == "a"
    # "a" was seen done in the round that handed it back; that round submitted "b".
    assert vendor.submissions == ["a", "b"]
    assert set(state["bookmarks"][LEDGER]) == {"a", "b"}  # the caller drops entries on commit
    assert vendor.most_running == 1


def test_units_can_be_asked_for_out_of_plan_order(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {}
    pipeline = make(state, vendor, units(vendor, {"a": 5, "b": 5, "c": 5}), max_in_flight=1)
    unit, status = pipeline.wait("c")  # not started: it takes the first free slot
    assert (unit.key, status.result) == ("c", "c.csv")
    assert vendor.submissions == ["c", "a"]
    assert [u.key for u, _ in pipeline] == ["a", "b"]
    with pytest.raises(KeyError, match="not planned"):
        pipeline.wait("z")


def test_every_id_is_in_state_before_the_first_poll(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {}
    pipeline = make(state, vendor, units(vendor, {"a": 20, "b": 20, "c": 20}), max_in_flight=3)
    first = pipeline.next_done()
    assert first is not None
    before_any_poll = vendor.first_check_state[0]["bookmarks"][LEDGER]
    assert {unit: entry["job_id"] for unit, entry in before_any_poll.items()} == {
        "a": "job-1",
        "b": "job-2",
        "c": "job-3",
    }
    assert before_any_poll["a"]["mine"] == "a"  # the vendor's info is kept with the id


def test_resume_from_the_ledger_without_submitting_again(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    old_a = vendor.new_job("a", 30)
    old_b = vendor.new_job("b", 30)
    state: dict[str, Any] = {
        "bookmarks": {
            LEDGER: {"a": {"job_id": old_a, "mine": "a"}, "b": {"job_id": old_b, "mine": "b"}}
        }
    }
    caplog.set_level(logging.INFO, "tap_emailtracking.jobs")
    done: list[str] = []
    consume(make(state, vendor, units(vendor, {"a": 30, "b": 30, "c": 5})), state, done)
    assert done == ["a", "b", "c"]
    assert vendor.submissions == ["c"]
    assert {old_a, old_b} <= {job_id for job_id, _ in vendor.checks}
    assert f"resuming job {old_a} for unit a" in caplog.text


def test_the_batch_check_is_used_once_per_round(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "tap_emailtracking.jobs")
    state: dict[str, Any] = {"bookmarks": {}}
    plan = units(vendor, {"a": 40, "b": 10, "c": 25}, BatchOnlyJob)
    consume(make(state, vendor, plan, batch=True), state, [])
    rounds = [r for r in caplog.records if "poll round" in r.getMessage()]
    assert len(vendor.batch_calls) == len(rounds) >= 3
    assert vendor.batch_calls[0] == ["job-1", "job-2", "job-3"]
    assert all(call for call in vendor.batch_calls)
    # One line per round says how many jobs are queued, running, done and failed.
    last = rounds[-1].getMessage()
    for part in ("0 queued", "0 running", "3 done", "0 failed", "next up: V job job-1 for unit a"):
        assert part in last


def test_an_id_missing_from_the_batch_answer_is_gone(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {LEDGER: {"a": {"job_id": "expired-1"}}}}
    consume(make(state, vendor, units(vendor, {"a": 5}), batch=True), state, [])
    assert vendor.submissions == ["a"]
    assert summary.counts() == {("V", "jobs submitted again (expired or not found)"): 1}


def test_each_job_backs_off_from_its_own_submission(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    plan = units(vendor, {"a": 12, "b": 200, "c": 200})
    consume(make(state, vendor, plan, max_in_flight=2, deadline_seconds=1000), state, [])
    times: dict[str, list[float]] = {}
    for job_id, at in vendor.checks:
        times.setdefault(vendor.jobs[job_id][0], []).append(at)
    gaps = {unit: [b - a for a, b in itertools.pairwise(t)] for unit, t in times.items()}
    assert times["c"][0] == pytest.approx(25)  # submitted when "a" was consumed
    for unit in ("b", "c"):
        assert gaps[unit][:5] == pytest.approx([10, 15, 22.5, 33.75, 40])


def test_a_failed_job_is_dropped_and_raised_in_its_turn(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    vendor.scripts["b"] = [JobStatus(JobState.FAILED, "ERROR", detail="bad program")]
    pipeline = make(state, vendor, units(vendor, {"a": 30, "b": 30, "c": 5}), max_in_flight=2)
    done: list[str] = []
    with pytest.raises(JobFailedError) as caught:
        consume(pipeline, state, done)
    assert done == ["a"]  # the unit before the failed one is still delivered
    for part in ("V / s", "job job-2, unit b", "'ERROR'", "bad program", "re-run"):
        assert part in str(caught.value)
    assert "b" not in state["bookmarks"][LEDGER]
    assert vendor.submissions == ["a", "b"]  # nothing more is submitted once a unit failed


def test_the_deadline_is_per_job_and_keeps_every_id(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 500, "b": 5}), deadline_seconds=100)
    with pytest.raises(JobDeadlineError) as caught:
        consume(pipeline, state, [])
    assert "job job-1, unit a" in str(caught.value)
    assert "kept in state" in str(caught.value)
    assert vendor.clock() <= 100
    assert {u: e["job_id"] for u, e in state["bookmarks"][LEDGER].items()} == {
        "a": "job-1",
        "b": "job-2",
    }


def test_an_unknown_status_is_tolerated_then_fails(vendor: FakeVendor) -> None:
    weird = JobStatus(JobState.UNKNOWN, "PAUSED")
    vendor.scripts["a"] = [weird, weird]
    state: dict[str, Any] = {"bookmarks": {}}
    consume(make(state, vendor, units(vendor, {"a": 5}), unknown_status_limit=3), state, [])
    vendor.scripts["b"] = [weird] * 3
    with pytest.raises(JobFailedError, match="unknown status 'PAUSED'"):
        consume(make(state, vendor, units(vendor, {"b": 5}), unknown_status_limit=3), state, [])
    assert "b" not in state["bookmarks"][LEDGER]


def test_a_gone_job_is_replayed_where_the_vendor_can(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.scripts["a"] = [JobStatus(JobState.GONE, "Jobs not found")]
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5}, ReplayableJob))
    first = pipeline.next_done()
    assert first is not None
    assert first[1].result == "a-r.csv"
    assert vendor.submissions == ["a"]
    assert vendor.replays == ["job-1"]
    assert [job_id for job_id, _ in vendor.checks] == ["job-1", "job-2", "job-2"]
    entry = vendor.saved[-1]["bookmarks"][LEDGER]["a"]
    assert (entry["job_id"], entry["replayed_from"], entry["mine"]) == ("job-2", "job-1", "a")
    assert summary.counts() == {("V", "jobs replayed (expired or not found)"): 1}
    assert "job job-1 for unit a is gone" in caplog.text
    assert "replayed it as job job-2" in caplog.text


def test_a_gone_job_is_submitted_once_more_with_a_warning(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.scripts["a"] = [JobStatus(JobState.RUNNING, "RUNNING"), JobStatus(JobState.GONE, "404")]
    state: dict[str, Any] = {"bookmarks": {}}
    done: list[str] = []
    consume(make(state, vendor, units(vendor, {"a": 5, "b": 5})), state, done)
    assert done == ["a", "b"]
    assert vendor.submissions == ["a", "b", "a"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("submitted it as job job-3" in r.getMessage() for r in warnings)
    assert summary.counts() == {("V", "jobs submitted again (expired or not found)"): 1}


def test_a_unit_lost_twice_in_one_run_fails(vendor: FakeVendor) -> None:
    gone = JobStatus(JobState.GONE, "Jobs not found")
    vendor.scripts["a"] = [gone, gone]
    state: dict[str, Any] = {"bookmarks": {}}
    with pytest.raises(
        JobFailedError, match="the vendor lost the job or its result twice"
    ) as caught:
        consume(make(state, vendor, units(vendor, {"a": 5})), state, [])
    assert "unit a" in str(caught.value)
    assert state["bookmarks"][LEDGER] == {}
    assert vendor.submissions == ["a", "a"]


def test_an_unusable_result_forgets_the_job_without_resubmitting(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5, "b": 5}), max_in_flight=1)
    unit, _ = next(iter(pipeline))
    pipeline.result_unusable(unit.key)
    assert "a" not in state["bookmarks"][LEDGER]
    assert vendor.submissions == ["a", "b"]  # "b" took the slot "a" freed when seen done
    assert pipeline.next_done() is not None  # the slot was freed


def test_a_unit_planned_twice_is_refused(vendor: FakeVendor) -> None:
    with pytest.raises(ValueError, match="planned twice"):
        make({}, vendor, units(vendor, {"a": 5}) + units(vendor, {"a": 5}))


TAKES = {"a": 50, "b": 10, "c": 35, "d": 5, "e": 80, "f": 20}


def run_with_kill(vendor: FakeVendor, **kill: int) -> list[str]:
    """Run until killed, then resume from the last saved STATE; return what was consumed."""
    state: dict[str, Any] = {"bookmarks": {}}
    done: list[str] = []
    vendor.clock.kill_after_sleeps = kill.get("sleeps")
    first = make(
        state, vendor, units(vendor, TAKES), max_in_flight=3, kill_at_checkpoint=kill.get("states")
    )
    with pytest.raises(Killed):
        consume(first, state, done)
    vendor.clock.kill_after_sleeps = None
    saved = copy.deepcopy(vendor.saved[-1]) if vendor.saved else {"bookmarks": {}}
    last = saved["bookmarks"].get("s", {}).get("done")
    rest = {k: t for k, t in TAKES.items() if last is None or k > last}
    consume(make(saved, vendor, units(vendor, rest), max_in_flight=3), saved, done)
    assert saved["bookmarks"][LEDGER] == {}
    return done


def clean_run() -> FakeVendor:
    """The same plan without a kill: how many waits and STATE messages there are to kill at."""
    vendor = FakeVendor(FakeClock())
    state: dict[str, Any] = {"bookmarks": {}}
    consume(make(state, vendor, units(vendor, TAKES), max_in_flight=3), state, [])
    return vendor


def test_a_kill_at_any_wait_or_state_message_resumes_without_submitting_any_unit_twice() -> None:
    clean = clean_run()
    assert len(clean.clock.sleeps) >= 6
    assert len(clean.saved) == 2 * len(TAKES)  # one per submission, one per commit
    kill_points = [{"sleeps": n} for n in range(len(clean.clock.sleeps))]
    kill_points += [{"states": n} for n in range(1, len(clean.saved) + 1)]
    for kill in kill_points:
        vendor = FakeVendor(FakeClock())
        done = run_with_kill(vendor, **kill)
        assert Counter(vendor.submissions) == Counter(list(TAKES)), kill
        assert sorted(set(done)) == sorted(TAKES), kill


def test_a_vendor_at_its_job_limit_is_asked_again_when_a_job_finishes(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.limit = 2  # other users of the account: the vendor says no before our own limit
    state: dict[str, Any] = {"bookmarks": {}}
    plan = units(vendor, dict.fromkeys("abcdef", 20))
    done: list[str] = []
    consume(make(state, vendor, plan, max_in_flight=4), state, done)
    assert done == list("abcdef")
    assert vendor.refused >= 1
    assert vendor.most_running == 2
    assert Counter(vendor.submissions) == Counter("abcdef")
    assert summary.counts()[("V", "job submissions put off (the vendor's job limit was reached)")]
    assert "the vendor refuses more export jobs for now (too many jobs)" in caplog.text


def test_a_vendor_that_never_accepts_the_job_ends_at_the_deadline(vendor: FakeVendor) -> None:
    vendor.limit = 0
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5}), deadline_seconds=100)
    with pytest.raises(JobDeadlineError, match="kept refusing to start the export job"):
        consume(pipeline, state, [])
    assert vendor.clock() <= 100
    assert state["bookmarks"][LEDGER] == {}


def test_every_vendor_advances_while_one_waits(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    """Two vendors in one sync: the second's jobs are polled and topped up while the first waits."""
    caplog.set_level(logging.INFO, "tap_emailtracking.jobs")
    other = FakeVendor(vendor.clock)
    scheduler = JobScheduler(clock=vendor.clock, sleep=vendor.clock.sleep)
    first_state: dict[str, Any] = {"bookmarks": {}}
    second_state: dict[str, Any] = {"bookmarks": {}}
    first = make(first_state, vendor, units(vendor, {"a": 100}), scheduler=scheduler, name="V")
    second = make(
        second_state,
        other,
        units(other, dict.fromkeys("wxyz", 10)),
        max_in_flight=2,
        scheduler=scheduler,
        name="W",
    )
    first.start()
    second.start()
    assert (vendor.submissions, other.submissions) == (["a"], ["w", "x"])
    consume(first, first_state, [])
    # While "a" ran, W's first jobs finished and the rest were submitted in later rounds.
    assert other.submissions == list("wxyz")
    assert vendor.clock() >= 100
    done: list[str] = []
    before = vendor.clock()
    consume(second, second_state, done)
    assert done == list("wxyz")
    assert vendor.clock() - before < 1  # nothing left to wait for
    lines = [r.getMessage() for r in caplog.records if "poll round" in r.getMessage()]
    assert any("V 0 queued, 1 running" in line and "; W " in line for line in lines)


def test_another_vendors_error_pauses_it_instead_of_failing_the_waiting_stream(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    other = FakeVendor(vendor.clock)
    scheduler = JobScheduler(clock=vendor.clock, sleep=vendor.clock.sleep)
    broken = units(other, {"w": 10})

    def unreachable(job_id: str) -> JobStatus:
        raise TransportError("connection reset", vendor="W", action="re-run")

    object.__setattr__(broken[0].job, "check", unreachable)
    second_state: dict[str, Any] = {"bookmarks": {}}
    second = make(second_state, other, broken, scheduler=scheduler, name="W")
    first_state: dict[str, Any] = {"bookmarks": {}}
    first = make(first_state, vendor, units(vendor, {"a": 50}), scheduler=scheduler, name="V")
    second.start()
    done: list[str] = []
    consume(first, first_state, done)
    assert done == ["a"]
    assert "W: its export jobs are paused until its streams run" in caplog.text
    assert second_state["bookmarks"][LEDGER]["w"]["job_id"] == "job-1"  # kept for W's turn
    with pytest.raises(TransportError, match="connection reset"):
        consume(second, second_state, [])


def downloader(vendor: FakeVendor, faults: list[Exception]) -> Callable[[Unit, JobStatus], str]:
    def download(unit: Unit, status: JobStatus) -> str:
        if faults:
            raise faults.pop(0)
        return f"{unit.key}: {status.result}"

    return download


def missing(name: str) -> RemoteFileMissingError:
    return RemoteFileMissingError(f"{name} is not on the site", vendor="V", action="re-run")


def test_an_expired_result_is_submitted_again_once(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5, "b": 5}), max_in_flight=2)
    got = pipeline.fetch("a", downloader(vendor, [missing("a.csv")]))
    assert got == "a: a.csv"
    assert vendor.submissions == ["a", "b", "a"]
    assert state["bookmarks"][LEDGER]["a"]["job_id"] == "job-3"
    assert summary.counts() == {("V", "jobs submitted again (expired or not found)"): 1}
    assert "is gone (its result is not on the file site: a.csv is not on the site" in caplog.text


def test_a_result_missing_twice_forgets_the_job_and_fails(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5}))
    with pytest.raises(RemoteFileMissingError):
        pipeline.fetch("a", downloader(vendor, [missing("a.csv"), missing("a.csv")]))
    assert vendor.submissions == ["a", "a"]
    assert state["bookmarks"][LEDGER] == {}


def test_a_damaged_result_forgets_the_job_at_once(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5}))
    damaged = CorruptFileError("a.csv is truncated", vendor="V", action="re-run")
    with pytest.raises(CorruptFileError):
        pipeline.fetch("a", downloader(vendor, [damaged]))
    assert vendor.submissions == ["a"]
    assert state["bookmarks"][LEDGER] == {}


def test_a_dropped_connection_keeps_the_job(vendor: FakeVendor) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, {"a": 5}))
    dropped = TransportError("connection reset", vendor="V", action="re-run")
    with pytest.raises(TransportError):
        pipeline.fetch("a", downloader(vendor, [dropped]))
    assert state["bookmarks"][LEDGER]["a"]["job_id"] == "job-1"


def test_a_refused_login_at_the_start_is_raised_on_the_vendors_turn_not_tried_again(
    vendor: FakeVendor,
) -> None:
    """Only a network failure is tried again: a refused login repeated can lock the account."""
    attempts: list[str] = []

    class RefusedJob(FakeJob):
        def submit(self) -> Submission:
            attempts.append(self.unit)
            raise AuthenticationError("login refused", vendor="W", action="check the password")

    other = FakeVendor(vendor.clock)
    scheduler = JobScheduler(clock=vendor.clock, sleep=vendor.clock.sleep)
    refused = make({}, other, units(other, {"w": 10}, RefusedJob), scheduler=scheduler, name="W")
    refused.start()
    first_state: dict[str, Any] = {"bookmarks": {}}
    first = make(first_state, vendor, units(vendor, {"a": 30}), scheduler=scheduler)
    consume(first, first_state, [])
    assert attempts == ["w"]  # W's error waited; V's stream was not disturbed
    with pytest.raises(AuthenticationError, match="login refused"):
        consume(refused, {"bookmarks": {}}, [])
    assert attempts == ["w"]


class QuotaJob(FakeJob):
    """A vendor with a daily quota: after `quota` submissions it takes no more today."""

    quota = 2

    def submit(self) -> Submission:
        if len(self.vendor.submissions) >= self.quota:
            raise UnitPutOffError("the day's quota is spent", vendor="V", action="later")
        return super().submit()


def test_a_unit_put_off_by_a_spent_quota_is_raised_in_its_turn_and_others_go_on(
    vendor: FakeVendor,
) -> None:
    state: dict[str, Any] = {"bookmarks": {}}
    pipeline = make(state, vendor, units(vendor, dict.fromkeys("abcd", 20), QuotaJob))
    outcomes = []
    for key in "abcd":
        try:
            pipeline.wait(key)
            outcomes.append(key)
        except UnitPutOffError:
            outcomes.append(f"{key}: later")
    assert outcomes == ["a", "b", "c: later", "d: later"]
    assert vendor.submissions == ["a", "b"]
    assert set(state["bookmarks"][LEDGER]) == {"a", "b"}  # nothing in state for the others
    assert pipeline.failure is None
    assert (
        summary.counts()[("V", "units left for a later run (the vendor's daily quota is spent)")]
        == 2
    )
