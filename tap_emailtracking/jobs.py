"""The export-job lifecycle every vendor shares: many jobs in flight, polled, handed back in order.

A vendor says how to submit and check one job (`ExportJob`, in `job_model`); everything else lives
here, once, because getting it wrong loses data or doubles vendor load:

* **Ahead of time.** `JobPipeline` takes the units of work in the order a stream must consume them
  and keeps up to `max_in_flight` of them submitted (or resumed from the ledger) and not yet
  consumed. Every id is in the ledger, hence in STATE, before any wait. A unit holds its slot
  until the caller calls `release` or drops its ledger entry (it commits the unit); the next
  `next_done()` then submits the next unit's job. Units beyond the slots are not resumed from
  the ledger either until their turn, so the head unit can always proceed.
* **In order.** `next_done()` (or iterating) hands units back in the given order, waiting only for
  the head unit while the others keep running, so bookmarks move exactly as with one job at a time.
* **Polling.** Rounds: each job is polled when its own backoff says so (interval growing from its
  own submission), all due jobs in one `check_many` call when the vendor offers it, else one by
  one; one INFO line per round counts queued, running, done and failed jobs.
* **Outcomes.** DONE is handed back. FAILED drops the id and raises `JobFailedError` when the
  unit's turn comes (the units before it are still delivered). The deadline is per job, counted
  from its start in this run; past it, `JobDeadlineError`, and the id stays for the next run. An
  UNKNOWN status is tolerated `unknown_status_limit` times, then fails. GONE (expired or not
  found) replays the job where the vendor can (`replay`), else submits it once more; either is
  warned about and counted in the end-of-run summary, and a unit lost twice in one run fails.
* **Unusable results.** `result_unusable` forgets the job and the run then fails; it does not
  resubmit within the run. The vendor said DONE and the file is missing or damaged: records may
  already have been emitted from it, a second job minutes later would likely meet the same fault,
  and some quotas are tiny (impact.com: 10 ClickExports a day). The next run is the retry.

No threads: the SDK syncs streams one after another and a stream consumes its units one by one, so
the only waiting is for the head unit, and one polling loop in the consuming thread covers every
job in flight. Vendor jobs run on the vendor's side anyway; threads would add locking around the
ledger and STATE output, and make kills and errors harder to reason about, for no gain in speed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from tap_emailtracking import summary
from tap_emailtracking.errors import JobDeadlineError, JobFailedError, TapEmailTrackingError
from tap_emailtracking.job_model import (
    JOB_FIELDS,
    CheckMany,
    ExportJob,
    JobLedger,
    JobState,
    JobStatus,
    PollPolicy,
    Replayable,
    Submission,
    vendor_info,
)

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "JOB_FIELDS",
    "CheckMany",
    "ExportJob",
    "JobLedger",
    "JobPipeline",
    "JobRunner",
    "JobState",
    "JobStatus",
    "PollPolicy",
    "Replayable",
    "Submission",
    "Unit",
    "vendor_info",
]

LOGGER = logging.getLogger("tap_emailtracking.jobs")
DEFAULT_MAX_IN_FLIGHT = 4
RESUBMITTED = "jobs submitted again (expired or not found)"
REPLAYED = "jobs replayed (expired or not found)"
_MISSING = JobStatus(JobState.GONE, "(not in the vendor's answer)")


@dataclass(frozen=True)
class Unit:
    """One unit of work: an opaque ledger key, its job, and the vendor's info kept with the id.

    `label` names the unit in logs and errors ("activity 2024-01-01 to 2024-01-07").
    """

    key: str
    job: ExportJob
    label: str
    stream: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Tracked:
    """A unit whose job is in flight in this run."""

    unit: Unit
    job_id: str
    started: float
    interval: float
    next_poll: float
    polls: int = 0
    unknown_seen: int = 0
    status: JobStatus | None = None
    error: TapEmailTrackingError | None = None

    @property
    def subject(self) -> str:
        return f"job {self.job_id}, {self.unit.label}"

    @property
    def waiting(self) -> bool:
        """Still to be polled: not done and not failed."""
        done = self.status is not None and self.status.state is JobState.DONE
        return self.error is None and not done


class JobPipeline:
    """Submit ahead, poll in rounds, hand units back in order (see the module docstring)."""

    def __init__(
        self,
        units: Iterable[Unit],
        *,
        vendor: str,
        ledger: JobLedger,
        policy: PollPolicy,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        check_many: CheckMany | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.vendor = vendor
        self.ledger = ledger
        self.policy = policy
        self.max_in_flight = max_in_flight
        self._check_many = check_many
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self._pending: deque[Unit] = deque()
        self._active: list[_Tracked] = []  # started, not yet handed out, in unit order
        self._handed: set[str] = set()  # handed out, not yet released
        self._keys: set[str] = set()
        self._lost: set[str] = set()  # units whose job the vendor lost once in this run
        self._failing = False
        self._rounds = 0
        self._began = clock()
        self.add(units)

    # -- the caller's side --------------------------------------------------------------------

    def add(self, units: Iterable[Unit]) -> None:
        """Append units to the plan (after those already given)."""
        for unit in units:
            if unit.key in self._keys:
                raise ValueError(f"unit {unit.key!r} is planned twice")
            self._keys.add(unit.key)
            self._pending.append(unit)

    def __iter__(self) -> Iterator[tuple[Unit, JobStatus]]:
        while (done := self.next_done()) is not None:
            yield done

    def next_done(self) -> tuple[Unit, JobStatus] | None:
        """The next unit in order once its job is done (None when every unit was handed back)."""
        self._top_up()
        if not self._active:
            if self._pending:
                raise RuntimeError(
                    f"{self.vendor}: all {self.max_in_flight} job slots are held by units handed "
                    "back but not released; call release() (or drop the ledger entry) first"
                )
            return None
        head = self._active[0]
        while True:
            if head.error is not None:
                self._active.pop(0)
                raise head.error
            if head.status is not None and head.status.state is JobState.DONE:
                self._active.pop(0)
                self._handed.add(head.unit.key)
                return head.unit, self._final(head)
            self._check_deadline(head)
            self._wait()
            self._poll_round(head)

    def release(self, key: str) -> None:
        """The caller consumed the unit: its slot is free for the next unit's job."""
        self._handed.discard(key)

    def result_unusable(self, key: str) -> None:
        """The job's result is missing or damaged: forget the job so the next run submits anew.

        It is not resubmitted in this run (see the module docstring); the caller raises its error.
        """
        entry = self.ledger.get(key)
        if entry is not None:
            LOGGER.warning(
                "%s: forgetting job %s (%s): its result cannot be used; the next run submits "
                "it afresh",
                self.vendor,
                entry.get("job_id"),
                key,
            )
        self.ledger.drop(key)
        self.release(key)

    # -- starting jobs ------------------------------------------------------------------------

    def _in_use(self) -> int:
        """Slots held: jobs started and not handed back, and handed back but not released."""
        self._handed = {key for key in self._handed if self.ledger.get(key) is not None}
        return len(self._active) + len(self._handed)

    def _top_up(self) -> None:
        """Start the next units' jobs while slots are free (none once a unit has failed)."""
        while self._pending and not self._failing and self._in_use() < self.max_in_flight:
            self._active.append(self._start(self._pending.popleft()))

    def _start(self, unit: Unit) -> _Tracked:
        entry = self.ledger.get(unit.key)
        if entry is not None:
            job_id = str(entry["job_id"])
            LOGGER.info(
                "%s: resuming job %s for %s (kept in state since %s)",
                self.vendor,
                job_id,
                unit.label,
                entry.get("submitted_at", "an earlier run"),
            )
        else:
            job_id = self._record(unit, unit.job.submit())
            LOGGER.info("%s: submitted job %s for %s", self.vendor, job_id, unit.label)
        return self._track(unit, job_id)

    def _record(self, unit: Unit, submitted: str | Submission, **extra: Any) -> str:
        """Write a new job id to the ledger (and so to STATE) before anything waits on it."""
        if isinstance(submitted, str):
            submitted = Submission(submitted)
        info = {**vendor_info(unit.info), **extra}
        if submitted.result is not None:
            info["result"] = submitted.result
        info["submitted_at"] = self._now().isoformat(timespec="seconds")
        self.ledger.put(unit.key, submitted.job_id, **info)
        return submitted.job_id

    def _track(self, unit: Unit, job_id: str) -> _Tracked:
        now = self._clock()
        return _Tracked(unit, job_id, now, self.policy.interval_seconds, next_poll=now)

    # -- polling ------------------------------------------------------------------------------

    def _wait(self) -> None:
        """Sleep until the next job is due a poll."""
        due = min(t.next_poll for t in self._active if t.waiting)
        delay = due - self._clock()
        if delay > 0:
            self._sleep(delay)

    def _poll_round(self, head: _Tracked) -> None:
        now = self._clock()
        due = [t for t in self._active if t.waiting and t.next_poll <= now]
        if self._check_many is not None:
            answers = self._check_many([t.job_id for t in due]) if due else {}
            statuses = [answers.get(t.job_id, _MISSING) for t in due]
        else:
            statuses = [t.unit.job.check(t.job_id) for t in due]
        now = self._clock()
        for tracked, status in zip(due, statuses, strict=True):
            self._observe(tracked, status, now)
        self._rounds += 1
        self._log_round(head)

    def _observe(self, tracked: _Tracked, status: JobStatus, now: float) -> None:
        tracked.polls += 1
        tracked.status = status
        tracked.next_poll = now + tracked.interval
        tracked.interval = min(
            self.policy.max_interval_seconds, tracked.interval * self.policy.growth
        )
        LOGGER.debug(
            "%s: job %s for %s is %s (poll %d)",
            self.vendor,
            tracked.job_id,
            tracked.unit.label,
            status.raw,
            tracked.polls,
        )
        if status.state is JobState.FAILED:
            self._failed(tracked, status)
        elif status.state is JobState.UNKNOWN:
            self._unknown(tracked, status)
        elif status.state is JobState.GONE:
            self._gone(tracked, status)

    def _log_round(self, head: _Tracked) -> None:
        counts = dict.fromkeys(("queued", "running", "done", "failed"), 0)
        for t in self._active:
            state = t.status.state if t.status is not None else JobState.PENDING
            if t.error is not None:
                counts["failed"] += 1
            elif state is JobState.DONE:
                counts["done"] += 1
            elif state is JobState.PENDING:
                counts["queued"] += 1
            else:
                counts["running"] += 1
        raw = head.status.raw if head.status is not None else "not polled yet"
        progress = f", {head.status.progress}" if head.status and head.status.progress else ""
        LOGGER.info(
            "%s: poll round %d, %.0f s: %s; next up: job %s for %s is %s (poll %d, %.0f s "
            "elapsed%s)",
            self.vendor,
            self._rounds,
            self._clock() - self._began,
            ", ".join(f"{n} {what}" for what, n in counts.items()),
            head.job_id,
            head.unit.label,
            raw,
            head.polls,
            self._clock() - head.started,
            progress,
        )

    # -- outcomes -----------------------------------------------------------------------------

    def _fail(self, tracked: _Tracked, error: TapEmailTrackingError) -> None:
        """The id is useless: forget it now, raise when the unit's turn comes."""
        self.ledger.drop(tracked.unit.key)
        tracked.error = error
        self._failing = True

    def _failed(self, tracked: _Tracked, status: JobStatus) -> None:
        detail = f": {status.detail}" if status.detail else ""
        self._fail(
            tracked,
            JobFailedError(
                f"the export job ended with status {status.raw!r}{detail}",
                vendor=self.vendor,
                stream=tracked.unit.stream,
                subject=tracked.subject,
                action="re-run the sync to submit a new job; if it fails again, "
                "contact the vendor's support with the job id",
            ),
        )

    def _unknown(self, tracked: _Tracked, status: JobStatus) -> None:
        tracked.unknown_seen += 1
        LOGGER.warning(
            "%s: job %s answered an unknown status %r (%d of %d allowed)",
            self.vendor,
            tracked.job_id,
            status.raw,
            tracked.unknown_seen,
            self.policy.unknown_status_limit,
        )
        if tracked.unknown_seen >= self.policy.unknown_status_limit:
            self._fail(
                tracked,
                JobFailedError(
                    f"the export job kept answering an unknown status {status.raw!r}",
                    vendor=self.vendor,
                    stream=tracked.unit.stream,
                    subject=tracked.subject,
                    action="re-run the sync to submit a new job; report the status word "
                    "to the tap's maintainers so it can be recognised",
                ),
            )

    def _gone(self, tracked: _Tracked, status: JobStatus) -> None:
        """Expired or not found: replay it where the vendor can, else submit it once more."""
        unit = tracked.unit
        if unit.key in self._lost:
            self._fail(
                tracked,
                JobFailedError(
                    f"the vendor lost the job twice in one run (answered {status.raw!r})",
                    vendor=self.vendor,
                    stream=unit.stream,
                    subject=tracked.subject,
                    action="re-run the sync to submit a new job; if it repeats, ask the "
                    "vendor's support how long export jobs and their results are kept",
                ),
            )
            return
        self._lost.add(unit.key)
        old = tracked.job_id
        replay = getattr(unit.job, "replay", None)
        replayed = replay(old) if callable(replay) else None
        if replayed is not None:
            kept = (self.ledger.get(unit.key) or {}).get("result")
            if isinstance(replayed, str) and replayed == old and kept is not None:
                replayed = Submission(old, result=str(kept))  # same job: same result location
            new = self._record(unit, replayed, replayed_from=old)
            what, how = REPLAYED, "replayed it as job"
        else:
            self.ledger.drop(unit.key)
            new = self._record(unit, unit.job.submit())
            what, how = RESUBMITTED, "submitted it again as job"
        summary.note(self.vendor, what)
        LOGGER.warning(
            "%s: job %s for %s is gone (%s: expired or not found); %s %s",
            self.vendor,
            old,
            unit.label,
            status.raw,
            how,
            new,
        )
        fresh = self._track(unit, new)
        tracked.job_id, tracked.started, tracked.interval = new, fresh.started, fresh.interval
        tracked.next_poll, tracked.polls, tracked.unknown_seen = fresh.next_poll, 0, 0
        tracked.status = None

    def _check_deadline(self, head: _Tracked) -> None:
        """Give up when the head job's next poll would pass its deadline; its id stays."""
        if head.next_poll - head.started <= self.policy.deadline_seconds:
            return
        elapsed = self._clock() - head.started
        raw = head.status.raw if head.status is not None else "not polled yet"
        raise JobDeadlineError(
            f"the export job was still {raw!r} after {elapsed:.1f} s, "
            f"the configured deadline is {self.policy.deadline_seconds:g} s",
            vendor=self.vendor,
            stream=head.unit.stream,
            subject=head.subject,
            action="re-run later: the job id is kept in state and will be polled again, "
            "not resubmitted; raise job_deadline_seconds if exports are routinely slow",
        )

    def _final(self, tracked: _Tracked) -> JobStatus:
        """The DONE status, with the result location the submission gave if the poll did not."""
        status = tracked.status or JobStatus(JobState.DONE, "done")
        if status.result is None:
            known = (self.ledger.get(tracked.unit.key) or {}).get("result")
            if known:
                return replace(status, result=str(known))
        return status


class JobRunner:
    """One vendor's policy and clock, for pipelines and for single jobs."""

    def __init__(
        self,
        *,
        vendor: str,
        ledger: JobLedger,
        policy: PollPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vendor = vendor
        self.ledger = ledger
        self.policy = policy
        self._clock = clock
        self._sleep = sleep

    def pipeline(
        self,
        units: Iterable[Unit],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        check_many: CheckMany | None = None,
    ) -> JobPipeline:
        """A pipeline over `units` with this vendor's ledger, policy and clock."""
        return JobPipeline(
            units,
            vendor=self.vendor,
            ledger=self.ledger,
            policy=self.policy,
            max_in_flight=max_in_flight,
            check_many=check_many,
            clock=self._clock,
            sleep=self._sleep,
        )

    def run(
        self,
        unit: str,
        job: ExportJob,
        *,
        stream: str | None,
        label: str,
        unit_info: dict[str, Any] | None = None,
    ) -> JobStatus:
        """Submit (or resume) one unit's job and wait until it is done; return the final status."""
        pipeline = self.pipeline([Unit(unit, job, label, stream, unit_info or {})], max_in_flight=1)
        for _, status in pipeline:
            return status
        raise AssertionError("unreachable: one unit is handed back or raises")  # pragma: no cover
