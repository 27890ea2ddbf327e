"""The per-vendor rate budget through the real tap CLI, against a sandbox api that enforces one.

The sandbox api announces a small budget (6 calls per 2 s window) in its headers and answers 429
beyond it. The tap must deliver the ground truth without a single 429, and the sandbox's record
of when each call arrived must show the calls spread over each window, not spent at once. The
tap's `RateBudget` goes at full speed while more than its reserve (3 calls) is left, then spaces
the calls left evenly until the reset: so in each window the calls after the first three are the
spaced ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from vendor_sandbox.sandbox import Sandbox
from vendor_sandbox.servers.ratelimit import Arrival, RateLimit

from .conftest import TapRun, run_tap
from .test_acoustic_raw_and_resume import assert_raw_matches_truth, raw_config
from .test_exacttarget_flow import assert_matches_truth

LIMIT = 6
WINDOW_SECONDS = 2.0
RESERVE = 3  # RateBudget's reserve_calls: below it, calls are spaced
# The tap spaces its reserve calls at least ~0.3 s apart in a 2 s window; calls it does not
# space are ~0.01 s apart. The threshold sits well between, for a loaded machine.
MIN_SPACED_GAP = 0.1


def assert_no_429_and_spread(limit: RateLimit, run: TapRun, vendor: str) -> None:
    """No call refused; the budget mattered (several windows); each window's calls spread."""
    refused = [a for a in limit.arrivals if not a.admitted]
    assert not refused, f"{len(refused)} calls answered 429, first at {refused[0]}"
    assert "HTTP 429" not in run.stderr
    windows = limit.by_window()
    assert len(limit.arrivals) > LIMIT, "the sync fits one window: the budget proved nothing"
    assert len(windows) >= 2
    spaced_windows = 0
    for number, calls in enumerate(windows):
        spaced = gaps(calls)[LIMIT - RESERVE - 1 :]  # before the calls drawn from the reserve
        assert all(gap >= MIN_SPACED_GAP for gap in spaced), (number, offsets(limit, calls))
        if spaced:
            spaced_windows += 1
            # The budget was stretched over the window, not spent in a burst at its start.
            span = calls[-1].at - calls[0].at
            assert span >= WINDOW_SECONDS / 3, (number, offsets(limit, calls))
    assert spaced_windows >= 1, [offsets(limit, calls) for calls in windows]
    assert f"{vendor}: 3 of {LIMIT} calls left until the rate limit resets" in run.stderr


def gaps(calls: list[Arrival]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]


def offsets(limit: RateLimit, calls: list[Arrival]) -> list[tuple[float, str]]:
    """Arrival times from the first call of the run, for failure messages."""
    start = limit.arrivals[0].at
    return [(round(call.at - start, 3), call.kind) for call in calls]


@pytest.mark.parametrize(("reset", "prefix"), [("delta", "RateLimit-"), ("epoch", "X-RateLimit-")])
def test_exacttarget_sync_stays_within_a_small_budget(
    sandbox: Sandbox, tmp_path: Path, reset: str, prefix: str
) -> None:
    """All ten streams (three batches, nine calls) draw from one budget of 6 calls per 2 s.

    epoch: the reset is a whole epoch second rounded down (the sandbox makes it 0.9 s early
    every time); the tap must not take the budget for renewed before the vendor does. Before
    RateBudget waited a margin past an announced reset, this case answered 429 on every run.
    """
    limit = RateLimit(LIMIT, WINDOW_SECONDS, reset=reset, prefix=prefix)
    sandbox.et_api.faults.rate_limit = limit
    run = run_tap(tmp_path, sandbox.tap_config())
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(sandbox, run)
    assert_no_429_and_spread(limit, run, "ExactTarget")
    assert len(limit.arrivals) == len(sandbox.et_api.requests) == 9


@pytest.fixture
def acoustic(tmp_path: Path) -> Iterator[Sandbox]:
    """Acoustic alone; each export job completes on its second status poll."""
    with Sandbox(tmp_path / "sandbox", exacttarget=None, rrde_polls_until_complete=2) as box:
        yield box


def test_acoustic_token_and_xml_calls_share_one_budget(acoustic: Sandbox, tmp_path: Path) -> None:
    """Acoustic counts OAuth token calls and XML API calls against one budget per org.

    Each access token dies after one call, so token refreshes are interleaved with the Raw
    Recipient Data export's XML calls; the tap's one budget must count both. The reset is an
    epoch rounded down, as in the ExactTarget case.
    """
    api = acoustic.acoustic_api
    assert api is not None
    limit = RateLimit(LIMIT, WINDOW_SECONDS, reset="epoch", prefix="X-Rate-Limit-")
    api.faults.rate_limit = limit
    api.faults.expire_tokens_after_calls = 1
    run = run_tap(tmp_path, raw_config(acoustic, window_days=7))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_raw_matches_truth(acoustic, run)
    assert_no_429_and_spread(limit, run, "Acoustic")
    kinds = [{call.kind for call in calls} for calls in limit.by_window()]
    assert {"token", "xml"} <= kinds[0], kinds  # both counted in one window
    assert [call.kind for call in limit.arrivals] == [r["kind"] for r in api.requests]


# -- the sandbox's switch itself ------------------------------------------------------------------


class StepClock:
    """Wall-clock time that moves only when a test moves it."""

    def __init__(self) -> None:
        self.start = self.now = 1_700_000_000.25

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("reset", "retry_after", "announced_reset", "closes_after"),
    [
        # The window closes 2 s after its first call; 1.5 s left are announced rounded up.
        ("delta", "2", "2", 2.0),
        # It closes at 1700000002.9, the first x.9 s at least 2 s after its first call; the
        # reset is announced as that second rounded down, 0.9 s early.
        ("epoch", "3", "1700000002", 2.65),
    ],
)
def test_the_sandbox_answers_429_beyond_its_budget_until_the_window_closes(
    sandbox: Sandbox, reset: str, retry_after: str, announced_reset: str, closes_after: float
) -> None:
    """What the tap is kept from: a burst past the budget is refused, with Retry-After."""
    clock = StepClock()
    limit = RateLimit(2, 2.0, reset=reset, clock=clock)
    sandbox.et_api.faults.rate_limit = limit
    url = sandbox.http.url + "/exacttarget/integrate.aspx"

    def call() -> requests.Response:
        return requests.post(url, data={"qf": "xml", "xml": "<exacttarget/>"}, timeout=10)

    first, second = call(), call()
    clock.now += 0.5
    third = call()
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in (first, second, third)] == ["1", "0", "0"]
    assert all(r.headers["RateLimit-Limit"] == "2" for r in (first, second, third))
    assert third.headers["Retry-After"] == retry_after
    assert third.headers["RateLimit-Reset"] == announced_reset
    clock.now = clock.start + closes_after - 0.01
    assert call().status_code == 429  # not a moment before the window closes
    clock.now = clock.start + closes_after  # it closes: a new one opens with the next call
    fifth = call()
    assert fifth.status_code == 200
    assert fifth.headers["RateLimit-Remaining"] == "1"
    assert [(a.window, a.admitted) for a in limit.arrivals] == [
        (0, True),
        (0, True),
        (0, False),
        (0, False),
        (1, True),
    ]
    assert [a.at - clock.start for a in limit.arrivals] == pytest.approx(
        [0, 0, 0.5, closes_after - 0.01, closes_after]
    )


def test_the_acoustic_sandbox_counts_token_rest_and_xml_calls_in_one_budget(
    acoustic: Sandbox,
) -> None:
    """One budget per org: a token, a REST and an XML call; the third is one too many."""
    api = acoustic.acoustic_api
    assert api is not None
    clock = StepClock()
    api.faults.rate_limit = RateLimit(2, 2.0, prefix="X-Rate-Limit-", clock=clock)
    base = acoustic.http.url + "/acoustic"
    answers = [
        requests.post(base + "/oauth/token", data={"grant_type": "refresh_token"}, timeout=10),
        requests.get(base + "/rest/bulkeventexport/jobdefinition", timeout=10),
        requests.post(base + "/XMLAPI", data="<Envelope/>", timeout=10),
    ]
    # The first two are served (and refused for want of credentials); the third is over budget.
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[2].headers["Retry-After"] == "2"
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert [(r["kind"], r["operation"], r["status"]) for r in api.requests][2] == (
        "xml",
        "rate_limited",
        429,
    )
    assert [a.kind for a in api.faults.rate_limit.arrivals] == ["token", "rest", "xml"]
