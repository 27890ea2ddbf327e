"""The export-job lifecycle every vendor shares: submit, remember, poll, finish or fail loudly.

A vendor client only says how to submit a job and how to read its status (`ExportJob`). This module
owns the rest, because getting it wrong loses data or doubles vendor load:

* the job id is written to STATE *before* the first poll (`JobLedger`), so a sync killed while
  waiting resumes the same job instead of submitting a second one;
* polling backs off from `interval` to `max_interval`, logs progress on every poll, and gives
  up at a per-run deadline (the id stays in state: the next run polls it again);
* a failed job removes its id (the next run submits afresh) and raises `JobFailedError`;
* an unknown status is tolerated a few times with a warning, then treated as a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any, Protocol

from tap_emailtracking.errors import JobDeadlineError, JobFailedError

LOGGER = logging.getLogger("tap_emailtracking.jobs")


class JobState(Enum):
    """A vendor status word, normalised."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class JobStatus:
    """One answer to a status poll."""

    state: JobState
    raw: str
    result: str | None = None
    progress: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Submission:
    """A started job: its id, and its result's location when the vendor says so at once."""

    job_id: str
    result: str | None = None


class ExportJob(Protocol):
    """What a vendor client provides for one unit of work."""

    def submit(self) -> str | Submission:
        """Start the export; return the vendor's job id (or a `Submission`)."""
        ...

    def check(self, job_id: str) -> JobStatus:
        """Ask the vendor how the job is doing."""
        ...


@dataclass(frozen=True)
class PollPolicy:
    """How patiently to wait for a job."""

    interval_seconds: float = 15.0
    max_interval_seconds: float = 120.0
    growth: float = 1.5
    deadline_seconds: float = 6 * 3600.0
    unknown_status_limit: int = 10


class JobLedger:
    """In-flight job ids per unit of work, kept in tap state under a pseudo-stream bookmark.

    The SDK round-trips every key under `bookmarks` through `--state`, including names that are not
    streams, so `bookmarks["_<vendor>_jobs"]` survives restarts and Meltano's state store.
    `checkpoint` must emit a STATE message: it is called after every change.
    """

    def __init__(
        self,
        tap_state: MutableMapping[str, Any],
        name: str,
        checkpoint: Callable[[], None],
    ) -> None:
        bookmarks = tap_state.setdefault("bookmarks", {})
        self._entries: dict[str, dict[str, Any]] = bookmarks.setdefault(name, {})
        self._checkpoint = checkpoint

    def get(self, unit: str) -> dict[str, Any] | None:
        """The saved entry for a unit, if a job is in flight."""
        return self._entries.get(unit)

    def units(self) -> list[str]:
        """Units that have a job in flight."""
        return list(self._entries)

    def in_flight_windows(self) -> dict[date, date]:
        """Start -> end of every in-flight job whose unit is a date window."""
        windows: dict[date, date] = {}
        for entry in self._entries.values():
            if "activity_start" in entry and "activity_end" in entry:
                start = date.fromisoformat(str(entry["activity_start"]))
                windows[start] = date.fromisoformat(str(entry["activity_end"]))
        return windows

    def put(self, unit: str, job_id: str, **info: Any) -> None:
        """Remember a job and emit STATE at once."""
        self._entries[unit] = {"job_id": job_id, **info}
        self._checkpoint()

    def drop(self, unit: str) -> None:
        """Forget a job (finished and consumed, or failed) and emit STATE."""
        if self._entries.pop(unit, None) is not None:
            self._checkpoint()


class JobRunner:
    """Drive one vendor's jobs through their lifecycle."""

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

    def run(
        self,
        unit: str,
        job: ExportJob,
        *,
        stream: str | None,
        label: str,
        unit_info: dict[str, Any] | None = None,
    ) -> JobStatus:
        """Submit (or resume) the unit's job and wait until it is done; return the final status.

        `label` describes the unit in logs and errors ("window 1/1/2024-1/7/2024").
        """
        entry = self.ledger.get(unit)
        if entry is not None:
            job_id = str(entry["job_id"])
            LOGGER.info(
                "%s: resuming job %s for %s (kept in state since %s)",
                self.vendor,
                job_id,
                label,
                entry.get("submitted_at", "an earlier run"),
            )
        else:
            submitted = job.submit()
            if isinstance(submitted, str):
                submitted = Submission(submitted)
            job_id = submitted.job_id
            info = dict(unit_info or {})
            if submitted.result is not None:
                info["result"] = submitted.result
            submitted_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.ledger.put(unit, job_id, submitted_at=submitted_at, **info)
            LOGGER.info("%s: submitted job %s for %s", self.vendor, job_id, label)
        status = self._wait(unit, job, job_id, stream=stream, label=label)
        if status.result is None:
            known = (self.ledger.get(unit) or {}).get("result")
            if known:
                status = replace(status, result=str(known))
        return status

    def _wait(
        self, unit: str, job: ExportJob, job_id: str, *, stream: str | None, label: str
    ) -> JobStatus:
        started = self._clock()
        interval = self.policy.interval_seconds
        unknown_seen = 0
        polls = 0
        subject = f"job {job_id}, {label}"
        while True:
            status = job.check(job_id)
            polls += 1
            elapsed = self._clock() - started
            progress = f", {status.progress}" if status.progress else ""
            LOGGER.info(
                "%s: job %s for %s is %s (poll %d, %.0f s elapsed%s)",
                self.vendor,
                job_id,
                label,
                status.raw,
                polls,
                elapsed,
                progress,
            )
            if status.state is JobState.DONE:
                return status
            if status.state is JobState.FAILED:
                self.ledger.drop(unit)
                detail = f": {status.detail}" if status.detail else ""
                raise JobFailedError(
                    f"the export job ended with status {status.raw!r}{detail}",
                    vendor=self.vendor,
                    stream=stream,
                    subject=subject,
                    action="re-run the sync to submit a new job; if it fails again, "
                    "contact the vendor's support with the job id",
                )
            if status.state is JobState.UNKNOWN:
                unknown_seen += 1
                LOGGER.warning(
                    "%s: job %s answered an unknown status %r (%d of %d allowed)",
                    self.vendor,
                    job_id,
                    status.raw,
                    unknown_seen,
                    self.policy.unknown_status_limit,
                )
                if unknown_seen >= self.policy.unknown_status_limit:
                    self.ledger.drop(unit)
                    raise JobFailedError(
                        f"the export job kept answering an unknown status {status.raw!r}",
                        vendor=self.vendor,
                        stream=stream,
                        subject=subject,
                        action="re-run the sync to submit a new job; report the status word "
                        "to the tap's maintainers so it can be recognised",
                    )
            if elapsed + interval > self.policy.deadline_seconds:
                raise JobDeadlineError(
                    f"the export job was still {status.raw!r} after {elapsed:.1f} s, "
                    f"the configured deadline is {self.policy.deadline_seconds:g} s",
                    vendor=self.vendor,
                    stream=stream,
                    subject=subject,
                    action="re-run later: the job id is kept in state and will be polled again, "
                    "not resubmitted; raise job_deadline_seconds if exports are routinely slow",
                )
            self._sleep(interval)
            interval = min(self.policy.max_interval_seconds, interval * self.policy.growth)
