"""Account-local wall-clock times to ISO 8601 with the right UTC offset, fast.

Vendors write times without a zone ("1/18/2008 9:25:00 AM" in the account's zone). Exports hold
millions of them, so the zone offset is looked up once per local hour and cached. Ambiguous times
at the autumn DST change take the first occurrence (`fold=0`), the only reading a zone-less
string allows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZERO = timedelta(0)


def zone(name: str) -> ZoneInfo:
    """Load an IANA zone, raising ValueError with a readable message."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def _format_offset(offset: timedelta) -> str:
    if offset == _ZERO:
        return "+00:00"
    sign = "+" if offset > _ZERO else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


class LocalTimeFormatter:
    """Format local date-time parts as ISO 8601 strings carrying the zone's offset."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._offsets: dict[tuple[int, int, int, int], str] = {}

    def iso(self, year: int, month: int, day: int, hour: int, minute: int, second: int) -> str:
        """`2008-01-18T09:25:00-06:00` for 1/18/2008 9:25:00 AM in America/Chicago."""
        hour_key = (year, month, day, hour)
        offset = self._offsets.get(hour_key)
        if offset is None:
            local = datetime(year, month, day, hour, minute, tzinfo=self.tz)
            offset = _format_offset(local.utcoffset() or _ZERO)
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            self._offsets[hour_key] = offset
        return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{offset}"
