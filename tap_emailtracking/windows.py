"""Whole-day date windows: the unit of work for vendors that export by date range.

Vendor date ranges are inclusive at both ends and in whole days of the account's time zone, so
windows here are `[start, end]` of calendar dates. Whether the next window starts at the end or the
day after is the vendor's call (see `next_start`): a day that is not over yet must be read again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta


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


def plan_run(
    *,
    start_date: date,
    end_date: date | None,
    today: date,
    bookmark: str | None,
    lookback_days: int,
    max_days: int,
    in_flight: dict[date, date] | None = None,
) -> list[DateWindow]:
    """One run's windows: from the bookmark less the lookback (or start_date) to today/end_date.

    `in_flight` maps the start of each window whose job is still in flight to its end. Those
    windows are reused (see `plan_windows`), and a lookback day that falls inside one starts the
    plan at that window, so the job is resumed rather than its days exported again in a
    differently cut window.
    """
    in_flight = in_flight or {}
    last = today if end_date is None else min(end_date, today)
    first = start_date
    if bookmark:
        resume = date.fromisoformat(bookmark) - timedelta(days=lookback_days)
        for start, end in in_flight.items():
            if start <= resume <= end:
                resume = start
        first = max(first, resume)
    return list(plan_windows(first, last, max_days, preferred_ends=in_flight))


def next_start(window: DateWindow, today: date) -> date:
    """Where the bookmark goes once a window is fully emitted.

    A window that ends before today covers only finished days: continue the day after. A window that
    reaches today covers a day still receiving activity: start there again next run (the records
    re-read carry the same keys, so targets upsert them).
    """
    if window.end < today:
        return window.end + timedelta(days=1)
    return min(window.end, today)
