"""A per-vendor rate budget: slow down before the vendor's rate limit runs out, not after.

Vendors announce their budget in response headers. Every response of a vendor feeds one
`RateBudget` (held by the vendor's `VendorHttp`, so every stream of the vendor in a run shares it)
and every request asks it first. While plenty is left, calls go at full speed. When the calls left
fall to the reserve (a fraction of the limit, or a few calls), they are spread evenly over the
time until the reset; at zero the next call waits for the reset. A 429 that comes anyway is still
the retries' business (with Retry-After); this is what keeps it from coming.

Headers read, any case, `RateLimit-*` first: `RateLimit-Limit`, `-Remaining`, `-Reset` (IETF
draft), `X-RateLimit-*` and `X-Rate-Limit-*` (de facto). A value like `100, 100;w=60` counts by
its first number. Assumption for the reset, since vendors differ and few say which they send: a
value above 10^9 is an epoch time (above 10^12, in milliseconds), anything smaller is seconds from
now. 10^9 seconds is 31 years, so no real delta is that large and no epoch since 2001 that small.
The IETF draft says delta seconds; reading it by the same rule costs nothing.

The count is also kept locally (one less per call), so calls made before the next answer arrives
are counted too; each answer's headers then correct it. When the reset time passes (plus the
margin: an epoch reset is often rounded down, so for up to a second the vendor may still count the
old window and answer "0 left, reset at <a moment just past>"), the budget is unknown again until
the next answer. Thread-safe: the waits are reserved under a lock (each call
gets the next free slot) and slept outside it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from tap_emailtracking.transports.retry import retry_after_seconds

LOGGER = logging.getLogger("tap_emailtracking.transports.ratelimit")

_PREFIXES = ("ratelimit-", "x-ratelimit-", "x-rate-limit-")
_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")
EPOCH_SECONDS_ABOVE = 1e9
EPOCH_MILLISECONDS_ABOVE = 1e12
RESET_MARGIN_SECONDS = 1.0  # resets are often rounded down to the second, and clocks differ
CLOCK_SKEW_SECONDS = 300.0  # a vendor clock this far from ours is read through its Date header


@dataclass(frozen=True)
class RateReading:
    """What one answer's headers say; None where a header is absent or unreadable."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # on the budget's clock

    @property
    def empty(self) -> bool:
        return self.limit is None and self.remaining is None and self.reset_at is None


def read_rate_headers(headers: Mapping[str, str], *, now: float) -> RateReading:
    """The rate-limit headers of an answer, the reset turned into a time on the clock `now` is."""
    values = {key.lower(): value for key, value in headers.items()}

    def number(name: str) -> float | None:
        for prefix in _PREFIXES:
            for suffix in ("", "-hour"):  # impact.com's partner API: X-RateLimit-Limit-hour
                match = _NUMBER.match(values.get(prefix + name + suffix, ""))
                if match:
                    return float(match.group(1))
        return None

    limit, remaining, reset = number("limit"), number("remaining"), number("reset")
    if reset is not None and reset > EPOCH_SECONDS_ABOVE:
        # An epoch is on the vendor's clock: when the answer's Date shows that clock far from
        # ours, the epoch is read against it (Date has whole seconds only, so not otherwise).
        vendor_now = _date_header(values.get("date"))
        if vendor_now is not None and abs(vendor_now - now) > CLOCK_SKEW_SECONDS:
            reset = max(
                0.0, (reset / 1000 if reset > EPOCH_MILLISECONDS_ABOVE else reset) - vendor_now
            )
    return RateReading(
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else int(remaining),
        reset_at=None if reset is None else reset_time(reset, now=now),
    )


def _date_header(value: str | None) -> float | None:
    """An HTTP `Date` header as epoch seconds, or None."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def reset_time(value: float, *, now: float) -> float:
    """A reset header's value as a time: epoch seconds or milliseconds if large, else a delta."""
    if value > EPOCH_MILLISECONDS_ABOVE:
        return value / 1000
    if value > EPOCH_SECONDS_ABOVE:
        return value
    return now + value


class RateBudget:
    """One vendor's rate budget for a run, shared by all its streams (and threads)."""

    def __init__(
        self,
        vendor: str,
        *,
        reserve_fraction: float = 0.1,
        reserve_calls: int = 3,
        min_interval_seconds: float = 0.0,
        max_wait_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`reserve_*`: slow down once the calls left are at most this many (the larger of the
        two); `min_interval_seconds`: never start calls closer together; `max_wait_seconds`:
        the longest single wait, so a wild reset header cannot stall a run for hours."""
        self.vendor = vendor
        self.reserve_fraction = reserve_fraction
        self.reserve_calls = reserve_calls
        self.min_interval_seconds = min_interval_seconds
        self.max_wait_seconds = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._last_start: float | None = None
        self._slowing = False

    def observe(self, headers: Mapping[str, str], *, refused: bool = False) -> None:
        """Take in the rate-limit headers of an answer (answers without them change nothing).

        `refused`: the answer was a 429, so nothing is left whatever a remaining count says.
        """
        now = self._clock()
        reading = read_rate_headers(headers, now=now)
        # A 429's Retry-After says when calls may go again, sooner than the window's reset.
        retry_after = retry_after_seconds(headers, now=self._clock) if refused else None
        if reading.empty and retry_after is None:
            return
        with self._lock:
            if reading.limit is not None:
                self._limit = reading.limit
            if refused:
                self._remaining = 0
            elif reading.remaining is not None:
                self._remaining = reading.remaining
            if reading.reset_at is not None:
                self._reset_at = reading.reset_at
            if retry_after is not None:
                self._reset_at = now + retry_after
            if self._remaining is not None and self._remaining > self._reserve():
                self._slowing = False

    def acquire(self) -> float:
        """Wait, if the budget says so, before one call; return the seconds waited."""
        with self._lock:
            now = self._clock()
            start = min(self._start_time(now), now + self.max_wait_seconds)
            self._last_start = start
            if self._remaining is not None:
                self._remaining -= 1
        pause = start - now
        if pause > 0:
            self._sleep(pause)
        return max(0.0, pause)

    def _start_time(self, now: float) -> float:
        """When the next call may start; logs (once) when the budget slows calls down."""
        if self._reset_at is not None and self._reset_at + RESET_MARGIN_SECONDS <= now:
            self._forget()
        start = now
        if self._last_start is not None:
            start = max(start, self._last_start + self.min_interval_seconds)
        if self._remaining is None or self._reset_at is None:
            return start
        if self._remaining <= 0:
            start = max(start, self._reset_at + RESET_MARGIN_SECONDS)
            start = min(start, now + self.max_wait_seconds)
            LOGGER.info(
                "%s: the rate limit is used up (%s calls); waiting %.1f s for it to reset",
                self.vendor,
                self._limit if self._limit is not None else "all",
                start - now,
            )
            self._forget()
            return start
        if self._remaining > self._reserve():
            return start
        # The calls left share the time from the last reserved slot (or now) to the reset.
        since = now if self._last_start is None else max(now, self._last_start)
        left = max(0.0, self._reset_at - since)
        spacing = left / self._remaining
        if not self._slowing:
            self._slowing = True
            LOGGER.info(
                "%s: %d of %s calls left until the rate limit resets in %.0f s; "
                "spacing calls %.1f s apart",
                self.vendor,
                self._remaining,
                self._limit if self._limit is not None else "?",
                self._reset_at - now,
                spacing,
            )
        if self._last_start is not None:
            start = max(start, self._last_start + spacing)
        return start

    def _reserve(self) -> float:
        limit = self._limit or 0
        return max(self.reserve_calls, self.reserve_fraction * limit)

    def _forget(self) -> None:
        """The window renewed: the budget is unknown until the next answer says otherwise."""
        self._remaining = None
        self._reset_at = None
        self._slowing = False
