"""One retry policy for every transport: HTTP calls and file transfers alike.

The waits are python-backoff's math: `backoff.expo` gives the exponential ceiling for each attempt
(base, 2 x base, 4 x base, ... up to the policy's maximum) and `backoff.full_jitter` picks a wait
anywhere between 0 and that ceiling, so clients that failed together do not retry together. A
server that says how long to wait (`Retry-After`) sets a floor: the wait is
`max(jittered backoff, Retry-After)`, never more than the policy's maximum.

Why a loop here and not `backoff.on_exception`: python-backoff 3.0 sleeps by calling `time.sleep`
inside `backoff._sync` and takes no sleep function. Patching that module's `time` would change
every user of backoff in the process (the SDK's streams too) and every thread. So `call` drives a
backoff-style wait generator itself (the server's floor is sent into it, as `backoff.runtime`
receives a value) and sleeps through an injected `sleep`, which tests replace with a list's
`append`: no test waits for real.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

import backoff

LOGGER = logging.getLogger("tap_emailtracking.transports.retry")

Sleep = Callable[[float], None]
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure (full jitter, exponential)."""

    max_attempts: int = 6
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 120.0

    def waits(self) -> Generator[float, float | None, None]:
        """A primed wait generator: send the server's floor (or None), receive the next wait."""
        waits = self._waits()
        next(waits)
        return waits

    def _waits(self) -> Generator[float, float | None, None]:
        ceilings = backoff.expo(
            base=2, factor=self.base_delay_seconds, max_value=self.max_delay_seconds
        )
        next(ceilings)  # python-backoff's generators yield 0 first, for their priming send
        floor = yield 0.0
        while True:
            wait = backoff.full_jitter(next(ceilings))
            if floor is not None:
                wait = max(wait, min(floor, self.max_delay_seconds))
            floor = yield wait


class TransientError(Exception):
    """One attempt failed in a way worth another try.

    `problem` is a short, safe description for the log ("HTTP 503", "ConnectionResetError: ...");
    `wait_at_least` is what the server asked for; `cause` is chained to the final error, if any.
    """

    def __init__(
        self,
        problem: str,
        *,
        wait_at_least: float | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait_at_least = wait_at_least
        self.cause = cause


def call(
    attempt: Callable[[], _T],
    *,
    policy: RetryPolicy,
    sleep: Sleep,
    who: str,
    what: str,
    give_up: Callable[[TransientError, int], BaseException],
) -> _T:
    """Run `attempt` until it returns, retrying each `TransientError` it raises (within limits).

    Any other exception passes straight through. Each retry logs one WARNING naming `who` (the
    vendor), `what` (the call and its address, never a query string), the attempt and the wait.
    When the attempts run out, `give_up(last failure, attempts)` builds the error to raise.
    """
    attempts = max(1, policy.max_attempts)
    waits = policy.waits()
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except TransientError as failure:
            if number == attempts:
                raise give_up(failure, attempts) from failure.cause
            wait = waits.send(failure.wait_at_least)
            LOGGER.warning(
                "%s: %s failed with %s (attempt %d of %d); retrying in %.1f s",
                who,
                what,
                failure.problem,
                number,
                attempts,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def retry_after_seconds(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Read `Retry-After` as seconds (delta or HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now())
