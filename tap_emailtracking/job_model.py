"""What an export job is, for every vendor: its statuses, its protocol, and the ledger of ids.

A vendor client only says how to submit a job and how to read its status (`ExportJob`, optionally
`replay` and a batch `check_many`); `jobs` owns the lifecycle. The ledger keeps each job id in
STATE *before* the first poll, so a sync killed while waiting resumes the same job instead of
submitting a second one. Vendors import all of this through `jobs`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

# Fields of a ledger entry that belong to this module; every other field is the vendor's.
JOB_FIELDS = ("job_id", "submitted_at", "result", "replayed_from")


class JobState(Enum):
    """A vendor status word, normalised."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    GONE = "gone"  # the vendor no longer knows the job or its result (expired, not found)


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
    """What a vendor client provides for one unit of work.

    A job may also offer `replay(job_id) -> str | Submission | None` (see `Replayable`): when the
    vendor says a job is gone, the pipeline replays it instead of submitting a new one.
    """

    def submit(self) -> str | Submission:
        """Start the export; return the vendor's job id (or a `Submission`)."""
        ...

    def check(self, job_id: str) -> JobStatus:
        """Ask the vendor how the job is doing."""
        ...


class Replayable(Protocol):
    """A job the vendor can run again under its old request (impact.com's Jobs/{id}/Replay)."""

    def replay(self, job_id: str) -> str | Submission | None:
        """Replay the job; return the new (or same) id, or None when it cannot be replayed."""
        ...


CheckMany = Callable[[Sequence[str]], Mapping[str, JobStatus]]
"""A vendor's batch status call: job id -> status; an id missing from the answer is gone."""


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

    A unit key is an opaque string chosen by the vendor (a window, a window and a program, a list
    id, a send id); the info stored with it is the vendor's, and this module never reads it by
    field name. The SDK round-trips every key under `bookmarks` through `--state`, including names
    that are not streams, so `bookmarks["_<vendor>_jobs"]` survives restarts and Meltano's state
    store. `checkpoint` must emit a STATE message: it is called after every change.
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

    def entries(self) -> dict[str, dict[str, Any]]:
        """A copy of every entry: unit -> {job_id, ..., the vendor's own fields}."""
        return copy.deepcopy(self._entries)

    def put(self, unit: str, job_id: str, **info: Any) -> None:
        """Remember a job and emit STATE at once."""
        self._entries[unit] = {**info, "job_id": job_id}
        self._checkpoint()

    def drop(self, unit: str, *, checkpoint: bool = True) -> None:
        """Forget a job (finished and consumed, or failed) and emit STATE.

        `checkpoint=False` when the caller emits STATE itself at once, so that the bookmark that
        commits the unit and the end of its job reach the target in one STATE message.
        """
        if self._entries.pop(unit, None) is not None and checkpoint:
            self._checkpoint()


def vendor_info(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The vendor's own fields of a ledger entry (what it passed as a unit's info)."""
    return {k: v for k, v in entry.items() if k not in JOB_FIELDS}
