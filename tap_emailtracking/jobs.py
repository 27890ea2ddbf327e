"""The export-job lifecycle every vendor shares: jobs submitted ahead, polled together, handed back.

A vendor says how to submit and check one job (`ExportJob`, in `job_model`); everything else lives
here, once, because getting it wrong loses data or doubles vendor load:

* **Ahead of time.** A `JobPipeline` holds one vendor's units of work in the order its streams
  will consume them and keeps up to `max_in_flight` of their jobs in flight: submitted (or resumed
  from the ledger) and not yet seen done. Every id is in the ledger, hence in STATE, before any
  wait. A job seen done frees its slot at once, although its unit may be consumed much later:
  the vendor's limits count running jobs, and its results wait on the vendor's side, not here.
* **Side by side.** One `JobScheduler` per sync holds every vendor's pipeline. The sync starts
  them all (`start`), so every vendor's first jobs run within seconds; and whenever a stream waits
  for a unit, every pipeline's due jobs are polled and topped up in the same round.
* **Any order of consumption.** `wait(key)` hands back one unit once its job is done (a unit not
  started yet goes to the front of the queue); iterating hands units back in plan order. Each
  stream asks for its units in bookmark order, so bookmarks move as with one job at a time.
* **Polling.** Each job is polled when its own backoff says so (interval growing from its own
  submission), all due jobs of a vendor in one `check_many` call when the vendor offers it, else
  one by one; one INFO line per round counts every vendor's queued, running, done, failed jobs.
* **Outcomes.** DONE is handed back. FAILED drops the id and raises `JobFailedError` when the
  unit's turn comes (the units before it are still delivered), and nothing more is submitted. The
  deadline is per job, counted from its start in this run; past it, `JobDeadlineError`, and the id
  stays for the next run. An UNKNOWN status is tolerated `unknown_status_limit` times, then fails.
  GONE (expired or not found) replays the job where the vendor can (`replay`), else submits it
  once more; either is warned about and counted in the summary, and a unit lost twice fails.
* **Refused for now.** A vendor at its job limit (`JobLimitReachedError`) is asked again when one
  of this run's jobs finishes, or after a growing pause; the job's deadline bounds the wait. A
  vendor whose daily quota is spent (`UnitPutOffError`) is not asked again in this run: the unit
  raises it when its turn comes, and its stream leaves it (and what follows it) for a later run.
* **Results** (`fetch`). A result that is not on the file site (it expired) counts as GONE: the
  job is submitted again once in this run. A damaged or refused result forgets the job and the run
  fails: records may already be out, and the same file would fail again. A dropped connection
  keeps the job, so the next run downloads again.

No threads: the SDK syncs streams one after another and a stream consumes its units one by one, so
the only waiting is for the unit a stream asks for, and one polling loop in the consuming thread
covers every job of every vendor. Vendor jobs run on the vendor's side anyway; threads would add
locking around the ledger and STATE output, and make kills and errors harder to reason about.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar

from tap_emailtracking import summary
from tap_emailtracking.errors import (
    JobDeadlineError,
    JobFailedError,
    JobLimitReachedError,
    RemoteFileMissingError,
    TapEmailTrackingError,
    TransportError,
    UnitPutOffError,
    UnusableResultError,
)
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
    "JobScheduler",
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
REFUSED = "job submissions put off (the vendor's job limit was reached)"
PUT_OFF = "units left for a later run (the vendor's daily quota is spent)"
_MISSING = JobStatus(JobState.GONE, "(not in the vendor's answer)")
_T = TypeVar("_T")


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
    """A unit whose job holds a slot in this run (`job_id` None: not accepted by the vendor yet)."""

    unit: Unit
    job_id: str | None
    started: float
    interval: float
    next_poll: float
    polls: int = 0
    unknown_seen: int = 0
    status: JobStatus | None = None
    error: TapEmailTrackingError | None = None
    lost_job: str | None = None  # the vendor lost this job (or its result): replace it

    @property
    def subject(self) -> str:
        return f"job {self.job_id or '(not submitted)'}, {self.unit.label}"

    @property
    def done(self) -> bool:
        return self.status is not None and self.status.state is JobState.DONE

    @property
    def in_flight(self) -> bool:
        """Holds a slot: not seen done and not failed."""
        return self.error is None and not self.done

    @property
    def pollable(self) -> bool:
        return self.in_flight and self.job_id is not None


class JobScheduler:
    """Every job pipeline of one sync, advanced by one polling loop (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.pipelines: list[JobPipeline] = []
        self._rounds = 0
        self._began = clock()

    def add(self, pipeline: JobPipeline) -> None:
        """Poll this pipeline's jobs in every round from now on."""
        self.pipelines.append(pipeline)

    def start(self, pipeline: JobPipeline) -> None:
        """Submit (or resume) the pipeline's first jobs now, before any stream waits.

        A vendor error here is not the sync's end: the vendor is paused (see `_background`).
        """
        self._background(pipeline, pipeline.top_up)

    def wait_for(self, pipeline: JobPipeline, key: str) -> _Tracked:
        """Poll every pipeline until `key`'s job is done; return it (its error raises)."""
        asked = self.clock()
        pipeline.resume()
        while True:
            pipeline.top_up()
            tracked = pipeline.tracked(key)
            if tracked is not None:
                if tracked.error is not None:
                    pipeline.forget(key)
                    raise tracked.error
                if tracked.done:
                    return tracked
            if tracked is None and pipeline.failure is not None:
                raise pipeline.failure  # an earlier unit failed: nothing more is started
            due = self._next_due()
            if tracked is not None:
                pipeline.check_deadline(tracked, due)
            else:
                pipeline.check_slot(key, asked, due)
            delay = due - self.clock()
            if delay > 0:
                self.sleep(delay)
            self._round(pipeline, key)

    def _next_due(self) -> float:
        """When the next poll (or refused submission) of any running pipeline is due."""
        times = [
            when
            for pipeline in self.pipelines
            if pipeline.paused_by is None
            for when in pipeline.due_times()
        ]
        if not times:  # pragma: no cover - a waiting unit always has a job or a slot coming
            raise RuntimeError("no export job is in flight or due to be submitted")
        return min(times)

    def _round(self, waiting: JobPipeline, key: str) -> None:
        """Poll every pipeline's due jobs and top the others up (`wait_for` tops up its own)."""
        now = self.clock()
        polled = waiting.poll_due(now)
        for pipeline in self.pipelines:
            if pipeline is not waiting and pipeline.paused_by is None:
                polled += self._background(pipeline, partial(pipeline.poll_due, now)) or 0
                if pipeline.paused_by is None:
                    self._background(pipeline, pipeline.top_up)
        if polled:
            self._rounds += 1
            self._log_round(waiting, key)

    def _background(self, pipeline: JobPipeline, work: Callable[[], _T]) -> _T | None:
        """A vendor's work while no stream of it waits: its errors pause it, they do not spread.

        The error waits for the vendor's own streams (`JobPipeline.resume`): so another vendor's
        streams still sync, and a sync whose streams deselect the vendor never meets it.
        """
        try:
            return work()
        except TapEmailTrackingError as exc:
            pipeline.paused_by = exc
            LOGGER.warning(
                "%s: its export jobs are paused until its streams run: %s", pipeline.vendor, exc
            )
            return None

    def _log_round(self, waiting: JobPipeline, key: str) -> None:
        parts = "; ".join(p.counts() for p in self.pipelines if p.paused_by is None or p is waiting)
        tracked = waiting.tracked(key)
        if tracked is None:
            head = f"{waiting.vendor} {key} waits for a free job slot"
        else:
            raw = tracked.status.raw if tracked.status is not None else "not polled yet"
            progress = (
                f", {tracked.status.progress}" if tracked.status and tracked.status.progress else ""
            )
            head = (
                f"{waiting.vendor} job {tracked.job_id or '(not submitted yet)'} for "
                f"{tracked.unit.label} is {raw} (poll {tracked.polls}, "
                f"{self.clock() - tracked.started:.0f} s elapsed{progress})"
            )
        LOGGER.info(
            "Export jobs: poll round %d, %.0f s: %s; next up: %s",
            self._rounds,
            self.clock() - self._began,
            parts,
            head,
        )


class JobPipeline:
    """One vendor's units: submitted ahead, polled in rounds, handed back when asked."""

    def __init__(
        self,
        units: Iterable[Unit],
        *,
        vendor: str,
        ledger: JobLedger,
        policy: PollPolicy,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        check_many: CheckMany | None = None,
        scheduler: JobScheduler | None = None,
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
        self.scheduler = scheduler or JobScheduler(clock=clock, sleep=sleep)
        self.scheduler.add(self)
        # Set when this vendor's work failed while no stream of it waited (`JobScheduler`).
        self.paused_by: TapEmailTrackingError | None = None
        self._check_many = check_many
        self._clock = self.scheduler.clock
        self._now = now
        self._units: dict[str, Unit] = {}  # every planned unit, in plan order
        self._pending: deque[str] = deque()  # planned, no slot yet
        self._active: dict[str, _Tracked] = {}  # holding a slot, or done and not handed back
        self._handed: set[str] = set()
        self._lost: set[str] = set()  # units whose job or result the vendor lost in this run
        self.failure: TapEmailTrackingError | None = None  # once set, nothing more is started
        self._refused_until = 0.0
        self._refusal_pause = policy.interval_seconds
        self.add(units)

    # -- the caller's side --------------------------------------------------------------------

    def add(self, units: Iterable[Unit]) -> None:
        """Append units to the plan (after those already given)."""
        for unit in units:
            if unit.key in self._units:
                raise ValueError(f"unit {unit.key!r} is planned twice")
            self._units[unit.key] = unit
            self._pending.append(unit.key)

    def planned(self, key: str) -> bool:
        """The unit is part of the plan."""
        return key in self._units

    def start(self) -> None:
        """Submit (or resume) the first jobs now (see `JobScheduler.start`)."""
        self.scheduler.start(self)

    def __iter__(self) -> Iterator[tuple[Unit, JobStatus]]:
        while (done := self.next_done()) is not None:
            yield done

    def next_done(self) -> tuple[Unit, JobStatus] | None:
        """The first unit of the plan not handed back yet, once its job is done (None: all were)."""
        key = next((k for k in self._units if k not in self._handed), None)
        return None if key is None else self.wait(key)

    def wait(self, key: str) -> tuple[Unit, JobStatus]:
        """Hand back a planned unit once its job is done (polling every vendor's jobs meanwhile)."""
        if key not in self._units:
            raise KeyError(f"{self.vendor}: unit {key!r} was not planned")
        if key not in self._active:
            if key in self._pending:
                self._pending.remove(key)
            self._pending.appendleft(key)  # asked for now: it takes the next free slot
        tracked = self.scheduler.wait_for(self, key)
        del self._active[key]
        self._handed.add(key)
        return tracked.unit, self._final(tracked)

    def fetch(self, key: str, download: Callable[[Unit, JobStatus], _T]) -> _T:
        """Wait for a unit's job and download its result, by the one failure rule for results.

        A result missing from the site (expired) submits the job again once in this run; a
        damaged or refused one forgets the job and raises; a dropped connection keeps it.
        """
        while True:
            unit, status = self.wait(key)
            try:
                return download(unit, status)
            except RemoteFileMissingError as exc:
                if not self._result_gone(unit, exc):
                    self.result_unusable(key)
                    raise
            except UnusableResultError:
                self.result_unusable(key)
                raise

    def result_unusable(self, key: str) -> None:
        """The job's result is damaged or refused (or missing twice): forget the job.

        The next run submits it anew; it is not resubmitted in this run (see the module
        docstring). The caller raises its error.
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

    # -- what the scheduler asks --------------------------------------------------------------

    def resume(self) -> None:
        """A stream of this vendor waits: raise what paused it, unless the network failed.

        A network failure may have passed, so the work is tried again (each try has its own
        `max_attempts`); any other error (credentials, an HTML page, a bad answer) would only be
        repeated, and a refused login repeated can lock the account: it is raised now.
        """
        paused_by, self.paused_by = self.paused_by, None
        if paused_by is not None and not isinstance(paused_by, TransportError):
            raise paused_by

    def tracked(self, key: str) -> _Tracked | None:
        """The unit's job in this run, if it has a slot (or is done)."""
        return self._active.get(key)

    def forget(self, key: str) -> None:
        """Stop tracking a unit whose error is being raised."""
        self._active.pop(key, None)
        self._handed.add(key)

    def due_times(self) -> list[float]:
        """When each job is due a poll, and when a refused submission may be tried again."""
        times = [t.next_poll for t in self._active.values() if t.pollable]
        if any(t.in_flight and t.job_id is None for t in self._active.values()):
            times.append(self._refused_until)
        return times

    def in_flight(self) -> int:
        """Slots held: jobs submitted or to be submitted, not yet seen done or failed."""
        return sum(t.in_flight for t in self._active.values())

    def top_up(self) -> None:
        """Give free slots to the next units, and submit every job that has a slot."""
        while self._pending and not self.failure and self.in_flight() < self.max_in_flight:
            key = self._pending.popleft()
            self._active[key] = self._start(self._units[key])
        running = sum(t.pollable for t in self._active.values())
        for tracked in list(self._active.values()):
            if running >= self.max_in_flight:
                break
            if tracked.in_flight and tracked.job_id is None:
                self._submit(tracked)
                running += tracked.job_id is not None

    def poll_due(self, now: float) -> int:
        """Poll every job whose turn has come; return how many were polled."""
        # Jobs due within a fifth of the first interval join this round: jobs submitted a moment
        # apart are then polled together, and the log has fewer, fuller lines.
        soon = now + self.policy.interval_seconds / 5
        due = [t for t in self._active.values() if t.pollable and t.next_poll <= soon]
        if not due:
            return 0
        ids = [str(t.job_id) for t in due]
        if self._check_many is not None:
            answers = self._check_many(ids)
            statuses = [answers.get(job_id, _MISSING) for job_id in ids]
        else:
            statuses = [t.unit.job.check(str(t.job_id)) for t in due]
        now = self._clock()
        for tracked, status in zip(due, statuses, strict=True):
            self._observe(tracked, status, now)
        return len(due)

    def counts(self) -> str:
        """`Vendor 1 queued, 2 running, 1 done, 0 failed, 3 to start`, for the round's line."""
        counts = dict.fromkeys(("queued", "running", "done", "failed"), 0)
        for t in self._active.values():
            state = t.status.state if t.status is not None else JobState.PENDING
            if t.error is not None:
                counts["failed"] += 1
            elif state is JobState.DONE:
                counts["done"] += 1
            elif state is JobState.PENDING:
                counts["queued"] += 1
            else:
                counts["running"] += 1
        text = ", ".join(f"{n} {what}" for what, n in counts.items())
        return f"{self.vendor} {text}, {len(self._pending)} to start"

    # -- starting jobs ------------------------------------------------------------------------

    def _start(self, unit: Unit) -> _Tracked:
        """A slot for the unit: its job resumed from the ledger, or one to submit."""
        now = self._clock()
        tracked = _Tracked(unit, None, now, self.policy.interval_seconds, next_poll=now)
        entry = self.ledger.get(unit.key)
        if entry is not None:
            tracked.job_id = str(entry["job_id"])
            LOGGER.info(
                "%s: resuming job %s for %s (kept in state since %s)",
                self.vendor,
                tracked.job_id,
                unit.label,
                entry.get("submitted_at", "an earlier run"),
            )
        return tracked

    def _submit(self, tracked: _Tracked) -> None:
        """Submit the unit's job (or replay the lost one) unless the vendor refuses for now."""
        now = self._clock()
        if now < self._refused_until:
            return
        unit, lost = tracked.unit, tracked.lost_job
        replay = getattr(unit.job, "replay", None)
        try:
            replayed = replay(lost) if lost is not None and callable(replay) else None
            submitted = unit.job.submit() if replayed is None else replayed
        except JobLimitReachedError as exc:
            self._refused(exc)
            return
        except UnitPutOffError as exc:
            tracked.error = exc  # left for a later run: the stream that asks for it stops there
            summary.note(self.vendor, PUT_OFF)
            return
        if replayed is not None:
            kept = (self.ledger.get(unit.key) or {}).get("result")
            if isinstance(replayed, str) and replayed == lost and kept is not None:
                submitted = Submission(lost, result=str(kept))  # same job: same result location
            tracked.job_id = self._record(unit, submitted, replayed_from=lost)
        else:
            tracked.job_id = self._record(unit, submitted)
        tracked.next_poll, tracked.interval = self._clock(), self.policy.interval_seconds
        tracked.lost_job = None
        if lost is None:
            LOGGER.info("%s: submitted job %s for %s", self.vendor, tracked.job_id, unit.label)
            return
        summary.note(self.vendor, RESUBMITTED if replayed is None else REPLAYED)
        LOGGER.warning(
            "%s: job %s for %s was lost by the vendor; %s it as job %s",
            self.vendor,
            lost,
            unit.label,
            "submitted" if replayed is None else "replayed",
            tracked.job_id,
        )

    def _refused(self, exc: JobLimitReachedError) -> None:
        """The vendor's job limit: try again once a job finishes, or after a growing pause."""
        summary.note(self.vendor, REFUSED)
        LOGGER.warning(
            "%s: the vendor refuses more export jobs for now (%s); %d of this run's jobs are "
            "running, the next is submitted when one finishes or in %.0f s",
            self.vendor,
            exc.what,
            sum(t.pollable for t in self._active.values()),
            self._refusal_pause,
        )
        self._refused_until = self._clock() + self._refusal_pause
        self._refusal_pause = min(
            self.policy.max_interval_seconds, self._refusal_pause * self.policy.growth
        )

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

    # -- outcomes -----------------------------------------------------------------------------

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
        if status.state in (JobState.DONE, JobState.FAILED, JobState.GONE):
            self._refused_until, self._refusal_pause = 0.0, self.policy.interval_seconds
        if status.state is JobState.FAILED:
            self._failed(tracked, status)
        elif status.state is JobState.UNKNOWN:
            self._unknown(tracked, status)
        elif status.state is JobState.GONE:
            self._gone(tracked, status.raw)

    def _fail(self, tracked: _Tracked, what: str, action: str) -> None:
        """The id is useless: forget it now, raise `JobFailedError` when the unit's turn comes."""
        error = JobFailedError(
            what,
            vendor=self.vendor,
            stream=tracked.unit.stream,
            subject=tracked.subject,
            action=f"re-run the sync to submit a new job; {action}",
        )
        self.ledger.drop(tracked.unit.key)
        tracked.error = error
        self.failure = self.failure or error

    def _failed(self, tracked: _Tracked, status: JobStatus) -> None:
        detail = f": {status.detail}" if status.detail else ""
        self._fail(
            tracked,
            f"the export job ended with status {status.raw!r}{detail}",
            "if it fails again, contact the vendor's support with the job id",
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
                f"the export job kept answering an unknown status {status.raw!r}",
                "report the status word to the tap's maintainers so it can be recognised",
            )

    def _gone(self, tracked: _Tracked, why: str) -> None:
        """Expired or not found: replay it where the vendor can, else submit it once more."""
        unit = tracked.unit
        if unit.key in self._lost:
            self._fail(
                tracked,
                f"the vendor lost the job or its result twice in one run ({why})",
                "if it repeats, ask the vendor's support how long export jobs and their "
                "results are kept",
            )
            return
        self._lost.add(unit.key)
        LOGGER.warning(
            "%s: job %s for %s is gone (%s: expired or not found); it is replaced once",
            self.vendor,
            tracked.job_id,
            unit.label,
            why,
        )
        if not callable(getattr(unit.job, "replay", None)):
            self.ledger.drop(unit.key)  # the old id is of no use any more
        now = self._clock()
        tracked.lost_job, tracked.job_id, tracked.status = tracked.job_id, None, None
        tracked.started, tracked.polls, tracked.unknown_seen = now, 0, 0
        self.top_up()

    def _result_gone(self, unit: Unit, exc: RemoteFileMissingError) -> bool:
        """A done job's result is not on the site: give the unit a slot again, replace its job.

        False when it was lost once already in this run (the caller forgets it and raises).
        """
        if unit.key in self._lost:
            return False
        self._handed.discard(unit.key)
        job_id = str((self.ledger.get(unit.key) or {}).get("job_id", "?"))
        now = self._clock()
        tracked = _Tracked(unit, job_id, now, self.policy.interval_seconds, next_poll=now)
        self._active = {unit.key: tracked, **self._active}
        self._gone(tracked, f"its result is not on the file site: {exc.what}")
        return True

    def check_deadline(self, tracked: _Tracked, due: float) -> None:
        """Give up when the awaited job's next poll would pass its deadline; its id stays.

        `due` is the scheduler's next event: an unsubmitted job is tried again no sooner.
        """
        own = tracked.next_poll if tracked.pollable else max(due, self._refused_until)
        if own - tracked.started <= self.policy.deadline_seconds:
            return
        elapsed = self._clock() - tracked.started
        if tracked.job_id is None:
            what = f"the vendor kept refusing to start the export job for {elapsed:.1f} s"
        else:
            raw = tracked.status.raw if tracked.status is not None else "not polled yet"
            what = f"the export job was still {raw!r} after {elapsed:.1f} s"
        raise JobDeadlineError(
            f"{what}, the configured deadline is {self.policy.deadline_seconds:g} s",
            vendor=self.vendor,
            stream=tracked.unit.stream,
            subject=tracked.subject,
            action="re-run later: the job id is kept in state and will be polled again, "
            "not resubmitted; raise job_deadline_seconds if exports are routinely slow",
        )

    def check_slot(self, key: str, asked: float, due: float) -> None:
        """Give up when a unit has waited past its deadline for a free job slot."""
        if due - asked <= self.policy.deadline_seconds:
            return
        unit = self._units[key]
        raise JobDeadlineError(
            f"no job slot came free for {self._clock() - asked:.1f} s "
            f"({self.max_in_flight} jobs in flight), the configured deadline is "
            f"{self.policy.deadline_seconds:g} s",
            vendor=self.vendor,
            stream=unit.stream,
            subject=unit.label,
            action="re-run later: the jobs in flight are kept in state; raise "
            "max_jobs_in_flight or job_deadline_seconds if exports are routinely slow",
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
    """One vendor's ledger, policy and scheduler: what each of its pipelines is built with."""

    def __init__(
        self,
        *,
        vendor: str,
        ledger: JobLedger,
        policy: PollPolicy,
        scheduler: JobScheduler | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vendor = vendor
        self.ledger = ledger
        self.policy = policy
        self.scheduler = scheduler or JobScheduler(clock=clock, sleep=sleep)

    def whole_plan(
        self,
        units: list[Unit],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        check_many: CheckMany | None = None,
    ) -> JobPipeline:
        """The pipeline of everything a sync plans for this vendor: a job in the ledger whose
        unit is no longer planned (committed, or the settings changed) is forgotten first."""
        planned = {unit.key for unit in units}
        for key in self.ledger.units():
            if key not in planned:
                LOGGER.info("%s: forgetting the job of unplanned unit %s", self.vendor, key)
                self.ledger.drop(key)
        return self.pipeline(units, max_in_flight=max_in_flight, check_many=check_many)

    def pipeline(
        self,
        units: Iterable[Unit],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        check_many: CheckMany | None = None,
    ) -> JobPipeline:
        """A pipeline over `units` with this vendor's ledger and policy, in the sync's scheduler."""
        return JobPipeline(
            units,
            vendor=self.vendor,
            ledger=self.ledger,
            policy=self.policy,
            max_in_flight=max_in_flight,
            check_many=check_many,
            scheduler=self.scheduler,
        )
