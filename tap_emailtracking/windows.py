"""Whole-day date windows: the unit of work for vendors that export by date range.

Vendor date ranges are inclusive at both ends and in whole days of the account's time zone, so
windows here are `[start, end]` of calendar dates. Whether the next window starts at the end or the
day after is the vendor's call (see `next_start`): a day that is not over yet must be read again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any


@dataclass(frozen=True, order=True)
class DateWindow:
    """An inclusive range of calendar days."""

    start: date
    end: date

    @property
    def days(self) -> int:
        """How many calendar days the window covers."""
        return (self.end - self.start).days + 1

    def key(self) -> str:
        """A stable text key for state and caches."""
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def in_flight_windows(
    entries: Mapping[str, Mapping[str, Any]],
    *,
    start_field: str = "activity_start",
    end_field: str = "activity_end",
) -> dict[date, date]:
    """Start -> end of every job-ledger entry whose vendor info records a date window.

    The ledger is keyed by any unit and never reads vendor fields; a vendor whose units are date
    windows stores the window's days in its entries (under these names unless it says otherwise)
    and derives its in-flight windows here. Entries without both fields are not windows.
    """
    windows: dict[date, date] = {}
    for entry in entries.values():
        if start_field in entry and end_field in entry:
            start = date.fromisoformat(str(entry[start_field]))
            windows[start] = date.fromisoformat(str(entry[end_field]))
    return windows


def plan_windows(
    first_day: date,
    last_day: date,
    max_days: int,
    *,
    preferred_ends: dict[date, date] | None = None,
) -> Iterator[DateWindow]:
    """Split `[first_day, last_day]` into windows of at most `max_days` days.

    `preferred_ends` maps a window start to an end a previous run already used (a job for that
    window is still in flight): the window is reused as long as it fits, so the job is resumed
    instead of orphaned when "today" has moved on since.
    """
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    preferred_ends = preferred_ends or {}
    start = first_day
    while start <= last_day:
        end = min(start + timedelta(days=max_days - 1), last_day)
        preferred = preferred_ends.get(start)
        if (
            preferred is not None
            and start <= preferred <= last_day
            and ((preferred - start).days < max_days)
        ):
            end = preferred
        yield DateWindow(start, end)
        start = end + timedelta(days=1)


@dataclass(frozen=True)
class RunPlanner:
    """One vendor's date windows for a sync: the account's today, and the run's windows.

    `in_flight` gives, at planning time, the start of each window whose job is still in flight
    mapped to its end (from the vendor's job ledger).
    """

    start_date: date
    end_date: date | None
    tz: tzinfo
    lookback_days: int
    window_days: int
    in_flight: Callable[[], dict[date, date]]
    now: Callable[[], datetime]

    def today(self) -> date:
        """The account's current calendar day."""
        return self.now().astimezone(self.tz).date()

    def plan(self, bookmark: str | None) -> list[DateWindow]:
        """Windows from the bookmark less the lookback (or start_date) to today/end_date.

        In-flight windows are reused (see `plan_windows`), and a lookback day that falls inside
        one starts the plan at that window, so the job is resumed rather than its days exported
        again in a differently cut window.
        """
        today = self.today()
        in_flight = self.in_flight()
        last = today if self.end_date is None else min(self.end_date, today)
        first = self.start_date
        if bookmark:
            resume = date.fromisoformat(bookmark) - timedelta(days=self.lookback_days)
            for start, end in in_flight.items():
                if start <= resume <= end:
                    resume = start
            first = max(first, resume)
        return list(plan_windows(first, last, self.window_days, preferred_ends=in_flight))


def next_start(window: DateWindow, today: date) -> date:
    """Where the bookmark goes once a window is fully emitted.

    A window that ends before today covers only finished days: continue the day after. A window that
    reaches today covers a day still receiving activity: start there again next run (the records
    re-read carry the same keys, so targets upsert them).
    """
    if window.end < today:
        return window.end + timedelta(days=1)
    return min(window.end, today)
