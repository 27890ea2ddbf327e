"""A rate limit any sandbox API can be put under: announced in headers, enforced with 429.

Tests arm a vendor api with one (`api.faults.rate_limit = RateLimit(limit=4, window_seconds=2)`)
and read `arrivals` afterwards: when each request came (wall-clock seconds, the clock the tap's
epoch resets are on), in which window it was counted and whether it was let through. So a test
can prove the tap slowed down in time and spread its calls without timing anything itself.

Fixed windows, as GitHub's and most gateways' are: a window opens with the first request after
the last one closed and admits `limit` requests; later ones answer 429 with `Retry-After` until
it closes. Every answer, admitted or not, carries `<prefix>Limit`, `-Remaining` and `-Reset`.
The reset is spelled as delta seconds rounded up (the IETF draft's spelling) or as an integer
epoch rounded down (GitHub's spelling, so the announced reset may be up to a second early). With
the epoch spelling a window closes 0.9 s into a second (it lasts up to a second longer than
`window_seconds`), so every announced reset is 0.9 s early: the worst case, every time, instead of
a case that comes and goes with the fraction of a second a run happens to start at.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from werkzeug.wrappers import Response

RESET_SPELLINGS = ("delta", "epoch")
EPOCH_CLOSE_FRACTION = 0.9


@dataclass(frozen=True)
class Arrival:
    """One request as the rate limit saw it."""

    at: float  # wall-clock seconds (time.time) when it arrived
    kind: str  # which part of the api ("xml", "token", "rest")
    window: int  # the window it was counted in, 0 for the first
    admitted: bool  # False: it was answered 429


@dataclass(frozen=True)
class Verdict:
    """Whether a request may be served, and the rate-limit headers its answer carries."""

    admitted: bool
    headers: dict[str, str]
    retry_after: int


@dataclass
class RateLimit:
    """`limit` requests per window of `window_seconds`; `reset`: "delta" or "epoch"."""

    limit: int
    window_seconds: float
    reset: str = "delta"
    prefix: str = "RateLimit-"
    clock: Callable[[], float] = time.time
    arrivals: list[Arrival] = field(default_factory=list)
    _window: int = field(default=-1, init=False, repr=False)
    _window_ends: float = field(default=0.0, init=False, repr=False)
    _used: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.reset not in RESET_SPELLINGS:
            raise ValueError(f"reset must be one of {RESET_SPELLINGS}, not {self.reset!r}")

    def admit(self, kind: str) -> Verdict:
        """Count one request (opening a new window if the last one closed) and judge it."""
        with self._lock:
            now = self.clock()
            if now >= self._window_ends:
                self._window += 1
                self._window_ends = self._closing_time(now + self.window_seconds)
                self._used = 0
            admitted = self._used < self.limit
            if admitted:
                self._used += 1
            self.arrivals.append(Arrival(now, kind, self._window, admitted))
            left = self._window_ends - now
            return Verdict(
                admitted,
                self._headers(now, left, remaining=self.limit - self._used),
                retry_after=math.ceil(left),
            )

    def _closing_time(self, earliest: float) -> float:
        """When a window that may close at `earliest` does: 0.9 s into a second for "epoch"."""
        if self.reset == "delta":
            return earliest
        return math.ceil(earliest - EPOCH_CLOSE_FRACTION) + EPOCH_CLOSE_FRACTION

    def _headers(self, now: float, left: float, *, remaining: int) -> dict[str, str]:
        reset = math.ceil(left) if self.reset == "delta" else math.floor(now + left)
        return {
            f"{self.prefix}Limit": str(self.limit),
            f"{self.prefix}Remaining": str(remaining),
            f"{self.prefix}Reset": str(reset),
        }

    def by_window(self) -> list[list[Arrival]]:
        """The arrivals grouped by the window they were counted in, in order."""
        windows: list[list[Arrival]] = [[] for _ in range(self._window + 1)]
        for arrival in self.arrivals:
            windows[arrival.window].append(arrival)
        return windows


def metered(limit: RateLimit | None, kind: str, serve: Callable[[], Response]) -> Response:
    """`serve()`'s answer under `limit` (if armed): its headers added, or a 429 beyond it.

    Both vendors' APIs refuse with a plain-text 429 and `Retry-After` in whole seconds.
    """
    if limit is None:
        return serve()
    verdict = limit.admit(kind)
    if verdict.admitted:
        response = serve()
    else:
        response = Response("Too Many Requests", status=429, content_type="text/plain")
        response.headers["Retry-After"] = str(verdict.retry_after)
    response.headers.update(verdict.headers)
    return response
