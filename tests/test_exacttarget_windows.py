"""How the ExactTarget export plans windows: start_date, bookmark, lookback, today, in-flight."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from tap_emailtracking.vendors.exacttarget.export import LEDGER_NAME, ExactTargetExports
from tap_emailtracking.vendors.exacttarget.settings import ExactTargetSettings
from tap_emailtracking.windows import DateWindow
from tap_emailtracking.workdirs import PREFIX, remove_abandoned_workdirs


def exports(
    *, now: datetime, state: dict[str, Any] | None = None, end: date | None = None, **settings: Any
) -> ExactTargetExports:
    raw = {
        "username": "u",
        "password": "p",
        "file_username": "f",
        "file_password": "fp",
        **settings,
    }
    return ExactTargetExports(
        ExactTargetSettings.from_config(raw),
        state=state if state is not None else {},
        checkpoint=lambda: None,
        start_date=date(2024, 3, 1),
        end_date=end,
        streams=(),
        now=lambda: now,
    )


def test_windows_run_from_start_date_to_the_accounts_today() -> None:
    # 03:00 UTC on March 20 is still March 19 in Chicago: the 19th is the last day planned.
    planner = exports(now=datetime(2024, 3, 20, 3, 0, tzinfo=timezone.utc))
    assert planner.windows.today() == date(2024, 3, 19)
    assert planner.windows.plan(None) == [
        DateWindow(date(2024, 3, 1), date(2024, 3, 7)),
        DateWindow(date(2024, 3, 8), date(2024, 3, 14)),
        DateWindow(date(2024, 3, 15), date(2024, 3, 19)),
    ]


def test_a_bookmark_resumes_with_the_lookback() -> None:
    planner = exports(now=datetime(2024, 3, 20, 12, tzinfo=timezone.utc), lookback_days=2)
    assert planner.windows.plan("2024-03-15") == [
        DateWindow(date(2024, 3, 13), date(2024, 3, 19)),
        DateWindow(date(2024, 3, 20), date(2024, 3, 20)),
    ]
    # Never earlier than start_date.
    assert planner.windows.plan("2024-03-02")[0].start == date(2024, 3, 1)


def test_end_date_caps_the_plan_and_a_finished_plan_is_empty() -> None:
    planner = exports(now=datetime(2024, 6, 1, tzinfo=timezone.utc), end=date(2024, 3, 10))
    assert planner.windows.plan(None)[-1].end == date(2024, 3, 10)
    assert planner.windows.plan("2024-03-11") == [DateWindow(date(2024, 3, 10), date(2024, 3, 10))]
    planner = exports(
        now=datetime(2024, 6, 1, tzinfo=timezone.utc), end=date(2024, 3, 10), lookback_days=0
    )
    assert planner.windows.plan("2024-03-11") == []


def test_an_in_flight_batch_keeps_its_window_after_today_moved_on() -> None:
    state = {
        "bookmarks": {
            LEDGER_NAME: {
                "2024-03-15..2024-03-16;sends=2024-02-14..2024-03-16": {
                    "job_id": "979804",
                    "activity_start": "2024-03-15",
                    "activity_end": "2024-03-16",
                }
            }
        }
    }
    planner = exports(now=datetime(2024, 3, 20, 12, tzinfo=timezone.utc), state=state)
    windows = planner.windows.plan("2024-03-16")
    assert windows[0] == DateWindow(date(2024, 3, 15), date(2024, 3, 16))
    assert planner.unit(windows[0]) in state["bookmarks"][LEDGER_NAME]
    assert windows[1] == DateWindow(date(2024, 3, 17), date(2024, 3, 20))


def test_send_ranges_reach_back_or_are_left_out() -> None:
    planner = exports(now=datetime(2024, 3, 20, tzinfo=timezone.utc), send_lookback_days=30)
    window = DateWindow(date(2024, 3, 8), date(2024, 3, 14))
    assert planner.sends_for(window) == DateWindow(date(2024, 2, 7), date(2024, 3, 14))
    single = exports(now=datetime(2024, 3, 20, tzinfo=timezone.utc), send_lookback_days=0)
    assert single.sends_for(window) is None
    assert single.unit(window) == "2024-03-08..2024-03-14"


def test_folders_of_killed_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f"{PREFIX}et-{dead.pid}-abc"
    live = tmp_path / f"{PREFIX}acoustic-{os.getppid()}-def"
    unrelated = tmp_path / "something-else"
    for folder in (abandoned, live, unrelated):
        folder.mkdir()
        (folder / "spool.jsonl").write_text("x")
    remove_abandoned_workdirs(tmp_path)
    assert not abandoned.exists()
    assert live.exists()
    assert unrelated.exists()
