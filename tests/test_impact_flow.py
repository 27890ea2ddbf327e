"""impact.com end to end: the real tap CLI against the sandbox's Jobs API and signed result URLs."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.impact.data import ImpactDataSpec
from vendor_sandbox.jobs import JobSettings
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap, run_tap_until
from .expected_impact import assert_clicks, assert_report

LEDGER, QUOTA = "_impact_jobs", "_impact_quota"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", acoustic=None, pinpointe=None, mailkit=None) as sandbox:
        yield sandbox


def config(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return box.tap_config(vendors=("impact",), impact_overrides=overrides)


def assert_complete(box: Sandbox, *runs: TapRun, reports: bool = True) -> None:
    """What an upserting target holds after the runs equals the ground truth."""
    truth = box.impact_truth()
    merged: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for stream, records in run.records.items():
            merged.setdefault(stream, []).extend(records)
    assert_clicks(merged.get("impact_clicks", []), truth["impact_clicks"])
    programs = {r["program_id"] for r in merged["impact_programs"]}
    assert programs == {str(p.get("CampaignId") or p["Id"]) for p in truth["impact_programs"]}
    for report in config(box)["impact"]["reports"] if reports else []:
        stream = f"impact_report_{report['name']}"
        assert_report(report, merged.get(stream, []), truth[stream])


def units(box: Sandbox) -> Counter[str]:
    return Counter(entry.unit for entry in box.impact_api.submission_log)


def test_a_full_sync_equals_the_ground_truth_within_one_days_quota(
    box: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)
    counts = box.ground_truth_counts(("impact",))
    assert {s: len(run.records.get(s, [])) for s in counts} == counts
    state = run.last_state
    assert state["bookmarks"][LEDGER] == {}
    assert state["bookmarks"]["impact_clicks"]["last_day"] == {
        "12001": "2024-01-04",
        "12002": "2024-01-04",
    }
    day = box.impact_api.today.isoformat()
    assert state["bookmarks"][QUOTA] == {"day": day, "ClickExport": 8, "ReportExport": 2}
    assert box.impact_api.quota_used("ClickExport") == 8
    # One ClickExport job per program and day, each polled through Jobs/{id}.
    assert all(n == 1 for n in units(box).values())
    # The signed URL was followed without the API credentials (the sandbox refuses them there).
    assert box.impact_api.calls("Download")
    assert box.impact_api.calls("SignedFile")
    # Request counts as the sandbox saw them: per clock hour within the budget, per day within
    # the quotas.
    hourly = box.impact_api.hourly_counts()
    assert hourly
    assert max(hourly.values()) <= box.impact_api.faults.hourly_limit
    (today,) = box.impact_api.daily_counts().values()
    assert today["ClickExport"] == 8
    assert today["ReportExport"] == 2


def test_a_backfill_beyond_the_quota_is_finished_by_later_runs(tmp_path: Path) -> None:
    spec = ImpactDataSpec(programs=3, start=date(2024, 1, 1), end=date(2024, 1, 8))  # 21 jobs
    with Sandbox(tmp_path / "box", acoustic=None, pinpointe=None, mailkit=None, impact=spec) as box:
        settings = config(box, reports=[])
        first = run_tap(tmp_path / "first", settings)
        assert first.returncode == 0, first.stderr[-3000:]
        assert len(first.records["impact_clicks"]) < box.impact_counts()["impact_clicks"]
        assert box.impact_api.quota_used("ClickExport") == 10
        assert "unit(s) left for the next runs: the day's quota is used up" in first.stderr
        # The same day: nothing more may be asked; the run ends cleanly and asks nothing.
        again = run_tap(tmp_path / "again", settings, state=first.last_state)
        assert again.returncode == 0
        assert not again.records.get("impact_clicks")
        assert box.impact_api.quota_used("ClickExport") == 10
        runs = [first, again]
        state = again.last_state
        for day in range(2):
            box.impact_api.advance_days(1)
            runs.append(run_tap(tmp_path / f"day-{day}", settings, state=state))
            assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
            state = runs[-1].last_state
        assert_complete(box, *runs, reports=False)
        assert all(n == 1 for n in units(box).values())  # no day asked twice
        daily = box.impact_api.daily_counts()
        assert all(kinds.get("ClickExport", 0) <= 10 for kinds in daily.values())


def test_a_spent_quota_at_impact_leaves_the_days_for_later_and_loses_nothing(
    box: Sandbox, tmp_path: Path
) -> None:
    box.impact_api.spend_quota("ClickExport", 7)  # other tools of the account used it
    first = run_tap(tmp_path / "first", config(box))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "units left for a later run" in first.stderr
    assert first.last_state["bookmarks"][LEDGER] == {}
    box.impact_api.advance_days(1)
    second = run_tap(tmp_path / "second", config(box), state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_complete(box, first, second)


def test_an_expired_result_is_replayed(box: Sandbox, tmp_path: Path) -> None:
    box.impact_api.faults.expire_units = {"click:12001:2024-01-02"}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)
    assert len(box.impact_api.calls("Replay")) == 1
    assert "1 jobs replayed (expired or not found)" in run.stderr


def test_an_expired_result_that_cannot_be_replayed_is_submitted_again(
    box: Sandbox, tmp_path: Path
) -> None:
    unit = "click:12002:2024-01-03"
    box.impact_api.faults.expire_units = {unit}
    box.impact_api.faults.unreplayable_units = {unit}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)
    assert units(box)[unit] == 2


def test_an_error_that_impact_retries_is_waited_for(box: Sandbox, tmp_path: Path) -> None:
    box.impact_api.faults.recover_units = {"click:12001:2024-01-03": 2}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)
    assert "is in ERROR" in run.stderr
    assert "waiting" in run.stderr


@pytest.mark.parametrize("account_type", ["Advertisers", "Agencies"])
def test_other_account_types_use_their_paths(tmp_path: Path, account_type: str) -> None:
    spec = ImpactDataSpec(account_type=account_type)
    with Sandbox(tmp_path / "box", acoustic=None, pinpointe=None, mailkit=None, impact=spec) as box:
        run = run_tap(tmp_path / "run", config(box))
        assert run.returncode == 0, run.stderr[-3000:]
        assert_complete(box, run)


@pytest.mark.parametrize(
    ("shapes", "settings"),
    [
        ({"result_page_size": 3}, {}),
        ({"redirect": False}, {}),
        ({"typed_job_fields": True, "rate_headers": "brand"}, {}),
        ({"list_page_size": 1}, {}),
        ({}, {"result_format": "CSV"}),
    ],
    ids=[
        "paged results",
        "no redirect",
        "typed job fields, brand headers",
        "one program a page",
        "CSV",
    ],
)
def test_answer_shapes_give_the_same_records(
    box: Sandbox, tmp_path: Path, shapes: dict[str, Any], settings: dict[str, Any]
) -> None:
    for name, setting in shapes.items():
        setattr(box.impact_api.shapes, name, setting)
    run = run_tap(tmp_path / "run", config(box, **settings))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_complete(box, run)


KILLS = 6


def test_seeded_kills_with_jobs_in_flight_resume_without_resubmitting(tmp_path: Path) -> None:
    jobs = JobSettings(queued=(0.05, 0.05), running=(0.2, 0.5), seed=4)
    with Sandbox(
        tmp_path / "box", acoustic=None, pinpointe=None, mailkit=None, impact_jobs=jobs
    ) as box:
        settings = config(box, max_jobs_in_flight=10)
        clean = run_tap(tmp_path / "clean", settings)
        assert clean.returncode == 0, clean.stderr[-3000:]
        records = sum(m["type"] == "RECORD" for m in clean.messages)
        states = sum(m["type"] == "STATE" for m in clean.messages)
        rng = random.Random(20261203)
        for i in range(KILLS):
            kind = rng.choice(["RECORD", "STATE"])
            n = rng.randint(1, (records if kind == "RECORD" else states) - 1)

            def stop(
                message: dict[str, Any], so_far: list[dict[str, Any]], kind: str = kind, n: int = n
            ) -> bool:
                return message["type"] == kind and sum(m["type"] == kind for m in so_far) >= n

            box.impact_api.advance_days(1)  # a fresh day's quota for each pair of runs
            before = len(box.impact_api.submission_log)
            killed = run_tap_until(tmp_path / f"kill-{i}", settings, stop_on_message=stop)
            in_flight = (killed.last_state or {}).get("bookmarks", {}).get(LEDGER, {})
            middle = len(box.impact_api.submission_log)
            resumed = run_tap(tmp_path / f"resume-{i}", settings, state=killed.last_state)
            assert resumed.returncode == 0, (kind, n, resumed.stderr[-3000:])
            assert_complete(box, killed, resumed)
            later = {e.unit for e in box.impact_api.submission_log[middle:]}
            assert not later & set(in_flight), (kind, n)
            both = Counter(e.unit for e in box.impact_api.submission_log[before:])
            assert all(c == 1 for u, c in both.items() if u.startswith("click:")), (kind, n, both)
            assert resumed.last_state["bookmarks"][LEDGER] == {}
