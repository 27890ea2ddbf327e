"""The per-vendor rate budget: header spellings, epoch or delta resets, slowing down, waiting at
zero, sharing between callers. A fake clock: sleeping moves it, nothing waits for real."""

from __future__ import annotations

import logging
import threading

import pytest

from tap_emailtracking.transports.ratelimit import (
    RESET_MARGIN_SECONDS,
    RateBudget,
    RateReading,
    read_rate_headers,
    reset_time,
)

NOW = 1_700_000_000.0


class FakeClock:
    """Time that passes only when someone sleeps; the sleeps are recorded."""

    def __init__(self, start: float = NOW, *, frozen: bool = False) -> None:
        self.time = start
        self.frozen = frozen
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if not self.frozen:
                self.time += seconds


def budget(clock: FakeClock, **options: float) -> RateBudget:
    return RateBudget("Acme", clock=clock.now, sleep=clock.sleep, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "30"},
        {"RateLimit-Limit": "100", "RateLimit-Remaining": "7", "RateLimit-Reset": "30"},
        {"ratelimit-limit": "100", "ratelimit-remaining": "7", "ratelimit-reset": "30"},
        {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "7", "X-Rate-Limit-Reset": "30"},
        {"RateLimit-Limit": "100, 100;w=60", "RateLimit-Remaining": "7", "RateLimit-Reset": "30"},
    ],
)
def test_every_spelling_of_the_headers_is_read(headers: dict[str, str]) -> None:
    assert read_rate_headers(headers, now=NOW) == RateReading(100, 7, NOW + 30)


def test_the_ietf_spelling_wins_over_the_x_spelling() -> None:
    headers = {"RateLimit-Remaining": "5", "X-RateLimit-Remaining": "50"}
    assert read_rate_headers(headers, now=NOW).remaining == 5


def test_absent_or_unreadable_headers_read_as_nothing() -> None:
    assert read_rate_headers({"Content-Type": "text/xml"}, now=NOW).empty
    assert read_rate_headers({"X-RateLimit-Remaining": "lots"}, now=NOW).empty


def test_a_reset_is_an_epoch_above_ten_to_the_nine_and_a_delta_below() -> None:
    assert reset_time(30, now=NOW) == NOW + 30  # seconds from now
    assert reset_time(86_400, now=NOW) == NOW + 86_400  # a day is still a delta
    assert reset_time(NOW + 45, now=NOW) == NOW + 45  # epoch seconds
    assert reset_time((NOW + 45) * 1000, now=NOW) == NOW + 45  # epoch milliseconds
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 60)}
    assert read_rate_headers(headers, now=NOW).reset_at == NOW + 60


def test_plenty_left_means_full_speed() -> None:
    clock = FakeClock()
    rate = budget(clock)
    rate.observe({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "50"})
    for _ in range(5):
        assert rate.acquire() == 0
    assert clock.sleeps == []


def test_low_budget_spreads_the_calls_left_until_the_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reserve = max(3 calls, 10 % of 100) = 10; 4 left with 40 s to go: one call per 10 s."""
    caplog.set_level(logging.INFO, logger="tap_emailtracking.transports")
    clock = FakeClock()
    rate = budget(clock)
    assert rate.acquire() == 0  # the first call of the run
    rate.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "4", "RateLimit-Reset": "40"})
    waits = [rate.acquire() for _ in range(4)]
    assert waits == pytest.approx([10, 10, 10, 10])
    slowing = [r for r in caplog.records if "spacing calls" in r.getMessage()]
    assert len(slowing) == 1  # once when it slows down, not per call
    assert slowing[0].levelno == logging.INFO
    assert slowing[0].getMessage() == (
        "Acme: 4 of 100 calls left until the rate limit resets in 40 s; spacing calls 10.0 s apart"
    )


def test_at_zero_the_next_call_waits_for_the_reset_then_runs_free(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tap_emailtracking.transports")
    clock = FakeClock()
    rate = budget(clock)
    rate.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)})
    assert rate.acquire() == 31  # the reset, plus a second for rounding and clock skew
    assert clock.time == NOW + 31
    assert rate.acquire() == 0  # the window renewed; nothing known until the next answer
    assert "Acme: the rate limit is used up (all calls); waiting 31.0 s" in caplog.text


def test_the_local_count_stops_calls_before_any_answer_says_zero() -> None:
    """Calls already made count down even before their answers (with headers) come back."""
    clock = FakeClock()
    rate = budget(clock, reserve_calls=0, reserve_fraction=0)
    rate.observe({"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "60"})
    assert [rate.acquire(), rate.acquire()] == [0, 0]
    assert rate.acquire() == 61


def test_a_later_answer_with_more_left_ends_the_slowdown() -> None:
    clock = FakeClock()
    rate = budget(clock)
    rate.acquire()
    rate.observe(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "20"}
    )
    assert rate.acquire() == 10
    rate.observe(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "90", "X-RateLimit-Reset": "60"}
    )
    assert rate.acquire() == 0


def test_the_minimum_interval_spaces_every_call() -> None:
    clock = FakeClock()
    rate = budget(clock, min_interval_seconds=2)
    assert [rate.acquire() for _ in range(3)] == [0, 2, 2]


def test_a_wild_reset_cannot_stall_the_run_beyond_the_longest_wait() -> None:
    clock = FakeClock()
    rate = budget(clock, max_wait_seconds=300)
    rate.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 86_400 * 30)})
    assert rate.acquire() == 300


def test_callers_in_several_threads_share_one_budget() -> None:
    """Two threads (two streams of a vendor) draw from one budget: the lock hands out distinct
    slots, 10 s apart, whatever the interleaving; the clock never moves on its own."""
    clock = FakeClock(frozen=True)
    rate = budget(clock)
    rate.acquire()
    rate.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "4", "RateLimit-Reset": "40"})
    waits: list[float] = []

    def caller() -> None:
        for _ in range(3):
            waits.append(rate.acquire())

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    # Four slots spread to the reset, then the spent budget waits for it (+1 s); the renewed
    # window is unknown, so the sixth call queues right behind the fifth.
    assert sorted(waits) == pytest.approx([10, 20, 30, 40, 41, 41])


def test_a_429_with_only_a_reset_spends_the_budget() -> None:
    clock = FakeClock()
    rate = budget(clock)
    rate.observe({"RateLimit-Reset": "20"}, refused=True)
    assert rate.acquire() == 21
    rate.observe({"RateLimit-Reset": "20"})  # an ordinary answer with a reset only: no count
    assert rate.acquire() == 0


def test_an_answer_just_past_an_early_epoch_reset_still_says_wait() -> None:
    """Epoch resets are whole seconds, often rounded down: the vendor may still count the old
    window for up to a second after the announced reset, and answer "0 left, reset <just past>".
    Within that second the count is believed (the call waits), not forgotten (a 429 would come)."""
    clock = FakeClock()
    rate = budget(clock)
    rate.observe({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(int(NOW) + 2)})
    assert rate.acquire() == 0  # the last call the budget allows
    clock.time = NOW + 2.3  # its answer comes just after the announced reset, still saying 0
    rate.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 2)})
    assert rate.acquire() == pytest.approx(0.7)  # to the reset plus its one-second margin
    assert rate.acquire() == 0  # then the window is unknown again: full speed


def test_impact_partner_hour_headers_and_an_epoch_read_against_the_vendors_date() -> None:
    partner = read_rate_headers(
        {
            "X-RateLimit-Limit-hour": "1000",
            "X-RateLimit-Remaining-hour": "7",
            "RateLimit-Reset": "700",
        },
        now=100.0,
    )
    assert (partner.limit, partner.remaining, partner.reset_at) == (1000, 7, 800.0)
    # The vendor's clock is two days ahead of ours: its epoch reset is 60 s after its Date.
    vendor_now = 1_704_067_200 + 2 * 86_400
    brand = read_rate_headers(
        {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(vendor_now + 60),
            "Date": "Wed, 03 Jan 2024 00:00:00 GMT",
        },
        now=1000.0,
    )
    assert brand.reset_at == 1060.0


def test_a_429s_retry_after_sets_when_calls_go_again() -> None:
    clock = [1000.0]
    sleeps: list[float] = []
    budget = RateBudget("V", clock=lambda: clock[0], sleep=sleeps.append)
    budget.observe({"X-RateLimit-Reset": "3600", "Retry-After": "2"}, refused=True)
    assert budget.acquire() == 2.0 + RESET_MARGIN_SECONDS  # not the window's 3600 s
