"""A vendor's export jobs over time: how long they take, how many may run at once, what was sent.

Each vendor api keeps one `JobBoard`. By default a job advances with its status polls (poll 1
queued, later polls running, done at poll N), which keeps tests quick. With durations in
`JobSettings` it advances with the api's clock instead, measured from its submission: `queued`
seconds, then `running` seconds, each drawn per job from a (min, max) span by a generator seeded
with `seed` and the job's ordinal, so a benchmark with 20-40 s jobs is repeatable.

The board logs every submission (time, job id, unit of work, when it finished) and the most jobs
it had in flight at once, and refuses a submission while `limit` jobs are in flight
(`JobLimitError`; the api answers it in the vendor's own error envelope).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["DONE", "QUEUED", "RUNNING", "JobBoard", "JobLimitError", "JobSettings", "Submission"]

QUEUED, RUNNING, DONE = "queued", "running", "done"
Span = tuple[float, float]


def _span(text: str) -> Span:
    low, _, high = text.strip().partition("-")
    problem = f"expected seconds N or MIN-MAX with 0 <= MIN <= MAX; got {text!r}"
    try:
        span = (float(low), float(high or low))
    except ValueError:
        raise ValueError(problem) from None
    if not 0 <= span[0] <= span[1]:
        raise ValueError(problem)
    return span


@dataclass(frozen=True)
class JobSettings:
    """A vendor's job durations (None: advance by status polls) and job limit (None: no limit)."""

    queued: Span | None = None
    running: Span | None = None
    seed: int = 0
    limit: int | None = None

    @property
    def timed(self) -> bool:
        return self.queued is not None or self.running is not None

    @classmethod
    def from_text(cls, seconds: str, *, seed: int = 0, limit: int | None = None) -> JobSettings:
        """Durations from `"QUEUED,RUNNING"`, each seconds `N` or `MIN-MAX` (e.g. `"2,20-40"`)."""
        queued, sep, running = seconds.partition(",")
        if not sep:
            raise ValueError(f"expected QUEUED,RUNNING seconds (e.g. 2,20-40); got {seconds!r}")
        return cls(queued=_span(queued), running=_span(running), seed=seed, limit=limit)

    def draw(self, ordinal: int) -> Span:
        """(queued, running) seconds of the `ordinal`-th job submitted (0-based)."""
        rng = random.Random(f"{self.seed}:{ordinal}")  # a str seed is hashed: stable across runs
        queued, running = self.queued or (0.0, 0.0), self.running or (0.0, 0.0)
        return rng.uniform(*queued), rng.uniform(*running)


@dataclass
class Submission:
    """One accepted job: when (the api's clock), its id, its unit of work, and when it ended.

    `starts` and `due` are set for timed jobs (when it leaves the queue, when it is done);
    `finished` once it completed or failed (a timed job: its due time, even if nobody polled
    then); `expired` when its result was removed from the file site.
    """

    at: float
    job_id: str
    unit: str
    starts: float | None = None
    due: float | None = None
    finished: float | None = None
    expired: bool = False

    @property
    def ends(self) -> float | None:
        """When it finished, or (timed, nobody polled yet) when it is due; None: not known."""
        return self.finished if self.finished is not None else self.due

    def in_flight(self, now: float) -> bool:
        if self.finished is not None:
            return self.finished > now
        return self.due is None or self.due > now


class JobLimitError(Exception):
    """A submission while `limit` jobs are in flight."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} jobs are in flight")
        self.limit = limit


class JobBoard:
    """The jobs one vendor api accepted, in submission order; thread-safe."""

    def __init__(self, clock: Callable[[], float], settings: JobSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or JobSettings()
        self.max_in_flight = 0
        self.rejected = 0
        self._log: list[Submission] = []
        self._by_id: dict[str, Submission] = {}
        self._lock = threading.Lock()

    def configure(self, **changes: Any) -> None:
        """Change some settings (`queued`, `running`, `seed`, `limit`) for later submissions."""
        self.settings = replace(self.settings, **changes)

    def reset(self, settings: JobSettings | None = None) -> None:
        """Forget every job and counter, and take `settings` (default: keep them).

        A benchmark runs several syncs against one sandbox and needs each run's own log and
        maximum in flight. Jobs submitted before a reset are unknown to the board afterwards.
        """
        with self._lock:
            self._log.clear()
            self._by_id.clear()
            self.max_in_flight = 0
            self.rejected = 0
            if settings is not None:
                self.settings = settings

    @property
    def log(self) -> list[Submission]:
        """Every accepted submission, oldest first (copies)."""
        with self._lock:
            return [replace(entry) for entry in self._log]

    def in_flight(self) -> int:
        """Jobs queued or running now."""
        now = self.clock()
        with self._lock:
            return sum(entry.in_flight(now) for entry in self._log)

    def submit(self, job_id: str, unit: str) -> Submission:
        """Log a new job, or raise `JobLimitError` while `limit` jobs are in flight."""
        now = self.clock()
        settings = self.settings
        with self._lock:
            flying = sum(entry.in_flight(now) for entry in self._log)
            if settings.limit is not None and flying >= settings.limit:
                self.rejected += 1
                raise JobLimitError(settings.limit)
            entry = Submission(now, job_id, unit)
            if settings.timed:
                queued, running = settings.draw(len(self._log))
                entry.starts, entry.due = now + queued, now + queued + running
            self._log.append(entry)
            self._by_id[job_id] = entry
            # In-flight counts rise only here, so the maximum is exact.
            self.max_in_flight = max(self.max_in_flight, flying + 1)
            return replace(entry)

    def stage(self, job_id: str, *, polls: int, polls_until_done: int) -> str:
        """QUEUED, RUNNING or DONE at a job's `polls`-th status poll (counting this one)."""
        with self._lock:
            entry = self._by_id[job_id]
        if entry.due is None:
            if polls >= polls_until_done:
                return DONE
            return QUEUED if polls <= 1 else RUNNING
        now = self.clock()
        if now >= entry.due:
            return DONE
        return QUEUED if entry.starts is not None and now < entry.starts else RUNNING

    def finish(self, job_id: str) -> None:
        """The job completed or failed (once; a timed job that came due earlier: at its due)."""
        now = self.clock()
        with self._lock:
            entry = self._by_id.get(job_id)
            if entry is not None and entry.finished is None:
                entry.finished = now if entry.due is None else min(now, entry.due)

    def expire(self, job_id: str) -> None:
        """Note that the job's result was removed from the file site."""
        with self._lock:
            entry = self._by_id.get(job_id)
            if entry is not None:
                entry.expired = True


class JobBoardCounters:
    """What a vendor api object tells tests about its jobs, read from its ``jobs`` board."""

    jobs: JobBoard

    @property
    def submission_log(self) -> list[Submission]:
        """Every accepted job, oldest first (see :class:`Submission`)."""
        return self.jobs.log

    @property
    def max_in_flight(self) -> int:
        """The most jobs queued or running at once."""
        return self.jobs.max_in_flight

    @property
    def jobs_in_flight(self) -> int:
        """Jobs queued or running now."""
        return self.jobs.in_flight()

    @property
    def rejected_submissions(self) -> int:
        """Submissions refused because ``jobs.limit`` jobs were in flight."""
        return self.jobs.rejected
