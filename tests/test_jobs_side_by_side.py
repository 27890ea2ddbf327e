"""Export jobs of both vendors side by side, through the real tap CLI against the sandbox.

ExactTarget (7 windows of 3 days) and Acoustic Raw Recipient Data Export (7 windows of 3 days)
with job durations of a few seconds on the sandbox's clock. What is checked comes from the
sandbox's own submission logs (when each job was submitted and finished, the most in flight at
once), not from wall-clock assertions in the test process.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.jobs import JobSettings, Submission
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap, run_tap_until
from .test_acoustic_raw_and_resume import assert_raw_matches_truth
from .test_exacttarget_flow import assert_matches_truth

WINDOWS = 7  # per vendor: Jan 1-21 in windows of 3 days
ET_LEDGER, ACOUSTIC_LEDGER = "_exacttarget_batches", "_acoustic_jobs"


def timed_sandbox(root: Path, running: tuple[float, float], **limits: int) -> Sandbox:
    """Both vendors, jobs queued 0.2 s then running `running` seconds (seeded per job)."""
    return Sandbox(
        root,
        acoustic_bex=None,
        exacttarget_jobs=JobSettings(
            queued=(0.2, 0.2), running=running, seed=1, limit=limits.get("exacttarget")
        ),
        acoustic_jobs=JobSettings(
            queued=(0.2, 0.2), running=running, seed=2, limit=limits.get("acoustic")
        ),
    )


def both_config(box: Sandbox, **each: Any) -> dict[str, Any]:
    """Both vendors over Jan 1-21, 3-day windows, quick polls; `each` goes to both vendors."""
    common = {
        "window_days": 3,
        "poll_interval_seconds": 0.1,
        "poll_max_interval_seconds": 0.3,
        **each,
    }
    config = box.tap_config(
        vendors=("exacttarget", "acoustic"),
        acoustic_mode="raw_recipient_data",
        acoustic_overrides=common,
        **common,
    )
    assert (config["start_date"], config["end_date"]) == ("2024-01-01", "2024-01-21")
    return config


def logs(box: Sandbox) -> dict[str, list[Submission]]:
    assert box.acoustic_api is not None
    return {
        "exacttarget": box.et_api.submission_log,
        "acoustic": box.acoustic_api.submission_log,
    }


def assert_complete(box: Sandbox, *runs: TapRun) -> None:
    """The union of the runs equals the ground truth of both vendors, exactly."""
    assert_matches_truth(box, *runs)
    assert_raw_matches_truth(box, *runs)


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Sandbox]:
    with timed_sandbox(tmp_path / "sandbox", running=(1.5, 3.0)) as box:
        yield box


def test_every_job_of_both_vendors_is_submitted_before_the_first_one_finishes(
    quick: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path, both_config(quick, max_jobs_in_flight=8))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(quick, run)
    submitted = logs(quick)
    every = submitted["exacttarget"] + submitted["acoustic"]
    assert [len(submitted["exacttarget"]), len(submitted["acoustic"])] == [WINDOWS, WINDOWS]
    first_finish = min(job.ends for job in every if job.ends is not None)
    assert max(job.at for job in every) < first_finish
    for vendor, jobs in submitted.items():  # one job per window, none twice
        assert len({job.unit for job in jobs}) == WINDOWS, vendor
    rounds = [line for line in run.stderr.splitlines() if "Export jobs: poll round" in line]
    assert rounds
    assert all(": Acoustic " in line and "; ExactTarget " in line for line in rounds)


def test_max_jobs_in_flight_is_never_exceeded_and_the_vendors_overlap(
    quick: Sandbox, tmp_path: Path
) -> None:
    config = both_config(quick)
    config["exacttarget"]["max_jobs_in_flight"] = 3
    config["acoustic"]["max_jobs_in_flight"] = 2
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(quick, run)
    assert quick.acoustic_api is not None
    assert (quick.et_api.max_in_flight, quick.acoustic_api.max_in_flight) == (3, 2)
    submitted = logs(quick)
    # Acoustic's first jobs were running before ExactTarget's first one finished.
    et_first_finish = min(j.ends for j in submitted["exacttarget"] if j.ends is not None)
    assert submitted["acoustic"][0].at < et_first_finish
    for vendor, jobs in submitted.items():
        assert Counter(job.unit for job in jobs).most_common(1)[0][1] == 1, vendor


def test_a_vendor_at_its_job_limit_gets_the_rest_later(tmp_path: Path) -> None:
    """The account allows 2 jobs at once (others use it too): refused submissions wait."""
    with timed_sandbox(tmp_path / "sandbox", running=(0.5, 1.0), exacttarget=2, acoustic=2) as box:
        run = run_tap(tmp_path / "run", both_config(box))
        assert run.returncode == 0, run.stderr[-3000:]
        assert_complete(box, run)
        assert box.acoustic_api is not None
        assert box.et_api.jobs.rejected >= 1
        assert box.acoustic_api.jobs.rejected >= 1
        assert (box.et_api.max_in_flight, box.acoustic_api.max_in_flight) == (2, 2)
        for vendor, jobs in logs(box).items():
            assert len(jobs) == WINDOWS, vendor
        assert "ExactTarget: the vendor refuses more export jobs for now" in run.stderr
        assert "Too many batch requests in progress" in run.stderr  # error 7
        assert "Acoustic: the vendor refuses more export jobs for now" in run.stderr
        assert "errorid 156" in run.stderr
        assert "job submissions put off (the vendor's job limit was reached)" in run.stderr


def test_an_expired_result_is_submitted_again_once(quick: Sandbox, tmp_path: Path) -> None:
    assert quick.acoustic_api is not None
    quick.et_api.faults.expire_results = 1  # the first batch to complete loses its ZIP
    quick.acoustic_api.faults.rrde_expire_results = 1
    run = run_tap(tmp_path, both_config(quick))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(quick, run)
    for vendor, jobs in logs(quick).items():
        expired = [job for job in jobs if job.expired]
        assert len(expired) == 1, vendor
        units = Counter(job.unit for job in jobs)
        assert units.pop(expired[0].unit) == 2, vendor  # submitted again, once
        assert set(units.values()) == {1}, vendor
        assert len(units) == WINDOWS - 1, vendor
    for vendor in ("ExactTarget", "Acoustic"):
        assert f"{vendor}: end-of-run summary: 1 jobs submitted again (expired or not found)" in (
            run.stderr
        )
    assert "its result is not on the file site" in run.stderr
    final = run.last_state or {}
    assert final["bookmarks"][ET_LEDGER] == final["bookmarks"][ACOUSTIC_LEDGER] == {}


# -- kills while many jobs are in flight ---------------------------------------------------------

KILL_SEED = 20261203
KILLS = 10


@pytest.fixture
def brief(tmp_path: Path) -> Iterator[Sandbox]:
    """Jobs of 0.5 to 1 s: twenty runs stay quick, and every job is still in flight together."""
    with timed_sandbox(tmp_path / "sandbox", running=(0.3, 0.8)) as box:
        yield box


def kill_points(clean: TapRun, rng: random.Random) -> list[dict[str, Any]]:
    """Seeded stop points spread over a clean run: after the Nth record or STATE, or log line."""
    records = sum(1 for m in clean.messages if m.get("type") == "RECORD")
    states = sum(1 for m in clean.messages if m.get("type") == "STATE")
    rounds = clean.stderr.count("Export jobs: poll round")
    points: list[dict[str, Any]] = []
    for _ in range(KILLS):
        kind = rng.choice(["record", "state", "round", "acoustic"])
        if kind == "record":
            points.append({"record": rng.randint(1, records - 1)})
        elif kind == "state":
            points.append({"state": rng.randint(16, states - 1)})  # after the 14 submissions
        elif kind == "round":
            points.append({"round": rng.randint(1, max(1, rounds // 2))})
        else:
            points.append({"acoustic_record": rng.randint(1, 500)})
    return points


def stopper(point: dict[str, Any]) -> dict[str, Any]:
    """`run_tap_until` arguments for one stop point."""
    kind, n = next(iter(point.items()))
    if kind == "round":
        seen: list[str] = []

        def on_log(line: str) -> bool:
            if "Export jobs: poll round" in line:
                seen.append(line)
            return len(seen) >= n

        return {"stop_on_log": on_log}

    def on_message(message: dict[str, Any], so_far: list[dict[str, Any]]) -> bool:
        if kind == "acoustic_record":
            wanted = [m for m in so_far if m.get("stream") == "acoustic_email_events"]
            return message.get("type") == "RECORD" and len(wanted) >= n
        want = "RECORD" if kind == "record" else "STATE"
        return message.get("type") == want and sum(m.get("type") == want for m in so_far) >= n

    return {"stop_on_message": on_message}


def test_kills_with_many_jobs_in_flight_resume_exactly_and_submit_no_job_twice(
    brief: Sandbox, tmp_path: Path
) -> None:
    # Every job is submitted in the first burst (8 slots, 7 windows each), so no stop point
    # falls between a submission and its STATE; lookback 0, so a resumed run plans no window a
    # finished one already covered: any second submission of a window is a lost job id.
    config = both_config(brief, max_jobs_in_flight=8, lookback_days=0)
    clean = run_tap(tmp_path / "clean", config)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert_complete(brief, clean)
    points = kill_points(clean, random.Random(KILL_SEED))
    assert len(points) >= 10
    for i, point in enumerate(points):
        before = {vendor: len(jobs) for vendor, jobs in logs(brief).items()}
        killed = run_tap_until(tmp_path / f"kill-{i}", config, **stopper(point))
        resumed = run_tap(tmp_path / f"resume-{i}", config, state=killed.last_state)
        assert resumed.returncode == 0, (point, resumed.stderr[-3000:])
        assert_complete(brief, killed, resumed)
        for vendor, jobs in logs(brief).items():
            units = Counter(job.unit for job in jobs[before[vendor] :])
            assert len(units) == WINDOWS, (point, vendor)
            assert set(units.values()) == {1}, (point, vendor, units)
        final = resumed.last_state or {}
        assert final["bookmarks"][ET_LEDGER] == final["bookmarks"][ACOUSTIC_LEDGER] == {}
