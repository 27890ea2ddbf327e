"""Whole-day windows and where the bookmark goes after each."""

from __future__ import annotations

from datetime import date

import pytest

from tap_emailtracking.windows import DateWindow, next_start, plan_windows


def test_windows_cover_every_day_once_and_respect_the_maximum() -> None:
    windows = list(plan_windows(date(2024, 1, 1), date(2024, 1, 20), 7))
    assert windows == [
        DateWindow(date(2024, 1, 1), date(2024, 1, 7)),
        DateWindow(date(2024, 1, 8), date(2024, 1, 14)),
        DateWindow(date(2024, 1, 15), date(2024, 1, 20)),
    ]
    assert all(w.days <= 7 for w in windows)


def test_empty_when_the_start_is_after_the_last_day() -> None:
    assert list(plan_windows(date(2024, 1, 2), date(2024, 1, 1), 7)) == []


def test_an_in_flight_window_is_reused_so_its_job_is_resumed() -> None:
    windows = list(
        plan_windows(
            date(2024, 1, 1),
            date(2024, 1, 20),
            7,
            preferred_ends={date(2024, 1, 1): date(2024, 1, 3)},
        )
    )
    assert windows[0] == DateWindow(date(2024, 1, 1), date(2024, 1, 3))
    assert windows[1].start == date(2024, 1, 4)


def test_an_in_flight_window_that_no_longer_fits_is_ignored() -> None:
    windows = list(
        plan_windows(
            date(2024, 1, 1),
            date(2024, 1, 5),
            7,
            preferred_ends={date(2024, 1, 1): date(2024, 1, 9)},
        )
    )
    assert windows == [DateWindow(date(2024, 1, 1), date(2024, 1, 5))]


def test_finished_days_move_the_bookmark_to_the_day_after() -> None:
    window = DateWindow(date(2024, 1, 1), date(2024, 1, 7))
    assert next_start(window, today=date(2024, 2, 1)) == date(2024, 1, 8)


def test_a_window_that_reaches_today_is_read_again_from_today() -> None:
    window = DateWindow(date(2024, 1, 1), date(2024, 1, 7))
    assert next_start(window, today=date(2024, 1, 7)) == date(2024, 1, 7)


def test_max_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(plan_windows(date(2024, 1, 1), date(2024, 1, 2), 0))
