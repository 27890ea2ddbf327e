"""The shared retry home: attempts, full-jitter waits, the Retry-After floor, giving up.

Nothing sleeps: the loop sleeps through the injected `sleep`, here a list's `append`."""

from __future__ import annotations

import logging
import random
import time

import pytest

from tap_emailtracking.transports import retry
from tap_emailtracking.transports.retry import RetryPolicy, TransientError, retry_after_seconds


class GaveUpError(Exception):
    def __init__(self, failure: TransientError, attempts: int) -> None:
        super().__init__(f"gave up after {attempts}: {failure.problem}")
        self.failure = failure
        self.attempts = attempts


class Flaky:
    """Raises the given failures in order, then returns "done"; counts its calls."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def run(operation: Flaky, sleeps: list[float], **policy: float) -> str:
    return retry.call(
        operation,
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=sleeps.append,
        who="Acme",
        what="submit to http://acme.test/api",
        give_up=GaveUpError,
    )


def test_transient_failures_are_retried_until_one_succeeds() -> None:
    flaky = Flaky(TransientError("HTTP 503"), TransientError("ConnectionResetError"))
    sleeps: list[float] = []
    assert run(flaky, sleeps, max_attempts=3) == "done"
    assert flaky.calls == 3
    assert len(sleeps) == 2


def test_giving_up_raises_the_callers_error_with_the_last_failure_and_its_cause() -> None:
    cause = ConnectionResetError("peer reset")
    flaky = Flaky(*[TransientError(f"drop {n}", cause=cause) for n in range(1, 5)])
    sleeps: list[float] = []
    with pytest.raises(GaveUpError) as caught:
        run(flaky, sleeps, max_attempts=4)
    assert caught.value.attempts == 4
    assert caught.value.failure.problem == "drop 4"
    assert caught.value.__cause__ is cause
    assert flaky.calls == 4
    assert len(sleeps) == 3  # no wait after the last attempt


def test_without_a_cause_the_final_error_chains_nothing() -> None:
    """HTTP failures carry no cause: a requests error's text may hold the URL's query."""
    with pytest.raises(GaveUpError) as caught:
        run(Flaky(TransientError("ReadTimeout")), [], max_attempts=1)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_other_errors_pass_through_without_a_retry() -> None:
    flaky = Flaky(ValueError("a bug"))
    sleeps: list[float] = []
    with pytest.raises(ValueError, match="a bug"):
        run(flaky, sleeps)
    assert flaky.calls == 1
    assert sleeps == []


def test_one_attempt_means_no_retry() -> None:
    sleeps: list[float] = []
    with pytest.raises(GaveUpError, match="gave up after 1"):
        run(Flaky(TransientError("HTTP 500")), sleeps, max_attempts=1)
    assert sleeps == []


def test_each_retry_logs_one_warning_with_attempt_and_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tap_emailtracking.transports")
    sleeps: list[float] = []
    run(Flaky(TransientError("HTTP 503"), TransientError("HTTP 429")), sleeps, max_attempts=5)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [
        f"Acme: submit to http://acme.test/api failed with HTTP 503 (attempt 1 of 5); "
        f"retrying in {sleeps[0]:.1f} s",
        f"Acme: submit to http://acme.test/api failed with HTTP 429 (attempt 2 of 5); "
        f"retrying in {sleeps[1]:.1f} s",
    ]


def test_waits_are_full_jitter_under_a_doubling_ceiling() -> None:
    """Attempt n waits anywhere in [0, min(max, base * 2^(n-1))], low and high both reached."""
    random.seed(20240611)
    policy = RetryPolicy(base_delay_seconds=2.0, max_delay_seconds=10.0)
    samples: dict[int, list[float]] = {n: [] for n in range(1, 6)}
    for _ in range(300):
        waits = policy.waits()
        for drawn in samples.values():
            drawn.append(waits.send(None))
    for n, ceiling in zip(samples, (2.0, 4.0, 8.0, 10.0, 10.0), strict=True):
        assert all(0 <= wait <= ceiling for wait in samples[n])
        assert min(samples[n]) < 0.1 * ceiling  # full jitter: not "half plus jitter"
        assert max(samples[n]) > 0.9 * ceiling


def test_retry_after_is_a_floor_and_the_maximum_caps_it() -> None:
    random.seed(7)
    policy = RetryPolicy(base_delay_seconds=1.0, max_delay_seconds=60.0)
    for _ in range(50):
        waits = policy.waits()
        assert waits.send(7.0) >= 7.0  # first ceiling is 1 s: the server's 7 s wins
        assert waits.send(3600.0) == 60.0  # a server asking for an hour gets the cap
        assert 0 <= waits.send(None) <= 4.0  # and the backoff goes on where it was


def test_retry_after_from_the_server_floors_the_wait_in_the_loop() -> None:
    sleeps: list[float] = []
    run(Flaky(TransientError("HTTP 429", wait_at_least=9.0)), sleeps, base_delay_seconds=0.01)
    assert sleeps[0] == 9.0


def test_retry_after_reads_seconds_and_http_dates_on_the_given_clock() -> None:
    now = 1_700_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 42))
    assert retry_after_seconds({"Retry-After": "3"}) == 3
    assert retry_after_seconds({"Retry-After": " 2.5 "}) == 2.5
    assert retry_after_seconds({"Retry-After": "-5"}) == 0
    assert retry_after_seconds({"Retry-After": date}, now=lambda: now) == 42
    assert retry_after_seconds({"Retry-After": date}, now=lambda: now + 100) == 0  # past
    minus_zero = date.replace("GMT", "-0000")  # naive when parsed: still UTC
    assert retry_after_seconds({"Retry-After": minus_zero}, now=lambda: now) == 42
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None
