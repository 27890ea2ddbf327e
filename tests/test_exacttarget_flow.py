"""ExactTarget end to end: the real tap CLI against the sandbox's HTTP, SFTP, FTP, FTPS servers."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, dedup, discover, run_tap, set_selected
from .expected import PRIMARY_KEYS, expected_records

STREAMS = sorted(PRIMARY_KEYS)


def submits(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The BulkAsync submissions the sandbox received, in order."""
    return [r for r in sandbox.et_api.requests if r["action"] == "BulkAsync"]


def days(first: str, last: str) -> tuple[date, date]:
    return date.fromisoformat(first), date.fromisoformat(last)


def assert_matches_truth(sandbox: Sandbox, *runs: TapRun) -> None:
    """The union of the runs' records, upserted by key, equals the ground truth exactly."""
    expected = expected_records(sandbox.exacttarget_truth(), ZoneInfo(sandbox.ET_TIMEZONE))
    for stream in STREAMS:
        emitted: list[dict[str, Any]] = []
        for run in runs:
            emitted += run.records.get(stream, [])
        got = dedup(stream, emitted)
        want = expected[stream]
        missing = want.keys() - got.keys()
        extra = got.keys() - want.keys()
        assert not missing, f"{stream}: {len(missing)} missing, e.g. {sorted(missing)[:3]}"
        assert not extra, f"{stream}: {len(extra)} unexpected, e.g. {sorted(extra)[:3]}"
        for record_key, record in want.items():
            assert got[record_key] == record, f"{stream} {record_key}"


@pytest.mark.parametrize("protocol", ["sftp", "ftp", "ftps"])
def test_full_sync_delivers_the_ground_truth(
    sandbox: Sandbox, tmp_path: Path, protocol: str
) -> None:
    run = run_tap(tmp_path, sandbox.tap_config(protocol))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(sandbox, run)
    # Every stream announced its schema and key; every record carries every schema property.
    schemas = {m["stream"]: m for m in run.messages if m["type"] == "SCHEMA"}
    assert sorted(schemas) == STREAMS
    for stream, message in schemas.items():
        assert tuple(message["key_properties"]) == PRIMARY_KEYS[stream]
        properties = set(message["schema"]["properties"])
        for record in run.records.get(stream, []):
            assert set(record) == properties, stream
    # One batch per 7-day window, shared by all ten streams.
    assert sandbox.et_api.submissions == len(submits(sandbox)) == 3
    final = run.last_state
    assert final is not None
    assert final["bookmarks"]["_exacttarget_batches"] == {}
    for stream in STREAMS:
        assert final["bookmarks"][stream]["next_window_start"] == "2024-01-22"


def test_windows_are_contiguous_and_inclusive_whole_days(sandbox: Sandbox, tmp_path: Path) -> None:
    run = run_tap(tmp_path, sandbox.tap_config())
    assert run.returncode == 0, run.stderr[-3000:]
    assert [r["daterange"] for r in submits(sandbox)] == [
        days("2024-01-01", "2024-01-07"),
        days("2024-01-08", "2024-01-14"),
        days("2024-01-15", "2024-01-21"),
    ]
    assert [r["jobdaterange"] for r in submits(sandbox)] == [
        days("2023-12-18", "2024-01-07"),
        days("2023-12-25", "2024-01-14"),
        days("2024-01-01", "2024-01-21"),
    ]
    # Events exactly on the window boundaries arrive once each (from their own window).
    opens = run.records["exacttarget_opens"]
    times = {r["opened_at"] for r in opens}
    assert "2024-01-07T23:59:59-06:00" in times
    assert "2024-01-08T00:00:00-06:00" in times


def test_incremental_rerun_reads_only_the_lookback_and_keeps_keys(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first = run_tap(tmp_path / "one", sandbox.tap_config())
    assert first.returncode == 0, first.stderr[-3000:]
    before = sandbox.et_api.submissions
    second = run_tap(tmp_path / "two", sandbox.tap_config(), state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    # lookback_days=1: only the last day is exported again, in one batch.
    assert [r["daterange"] for r in submits(sandbox)[before:]] == [days("2024-01-21", "2024-01-21")]
    # Re-read records are identical to the first run's (same keys, same values).
    for stream in STREAMS:
        again = dedup(stream, second.records.get(stream, []))
        original = dedup(stream, first.records.get(stream, []))
        for record_key, record in again.items():
            assert original[record_key] == record, stream
    assert_matches_truth(sandbox, first, second)


def test_selecting_one_stream_emits_and_bookmarks_only_that_stream(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = sandbox.tap_config()
    catalog = discover(tmp_path, config)
    set_selected(catalog, [], lambda stream: stream == "exacttarget_clicks")
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.records) == {"exacttarget_clicks"}
    expected = expected_records(sandbox.exacttarget_truth(), ZoneInfo(sandbox.ET_TIMEZONE))
    assert (
        dedup("exacttarget_clicks", run.records["exacttarget_clicks"])
        == expected["exacttarget_clicks"]
    )
    assert sandbox.et_api.submissions == 3
    final = run.last_state
    assert final is not None
    bookmarks = final["bookmarks"]
    assert bookmarks["exacttarget_clicks"]["next_window_start"] == "2024-01-22"
    assert "next_window_start" not in bookmarks.get("exacttarget_opens", {})
    assert bookmarks["_exacttarget_batches"] == {}


def test_spooled_records_still_go_through_stream_maps_and_deselection(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Spooled records reach the writer as JSON bytes; where the SDK's pipeline must change a
    record (a stream map, a deselected property) they are decoded for it, so nothing is lost."""
    config = sandbox.tap_config()
    config["stream_maps"] = {"exacttarget_opens": {"opened_day": "opened_at[:10]"}}
    catalog = discover(tmp_path, config)
    set_selected(
        catalog, ["properties", "email"], lambda stream: stream != "exacttarget_subscribers"
    )
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    # bounces sync first and parse the export; opens and subscribers are read from spools.
    assert "exacttarget_opens reads activity" in run.stderr
    assert "exacttarget_subscribers reads activity" in run.stderr
    expected = expected_records(sandbox.exacttarget_truth(), ZoneInfo(sandbox.ET_TIMEZONE))
    want_opens = {
        k: {**r, "opened_day": r["opened_at"][:10]}
        for k, r in expected["exacttarget_opens"].items()
    }
    assert want_opens
    assert dedup("exacttarget_opens", run.records["exacttarget_opens"]) == want_opens
    want_subscribers = {
        k: {name: v for name, v in r.items() if name != "email"}
        for k, r in expected["exacttarget_subscribers"].items()
    }
    assert any(r["email"] for r in expected["exacttarget_subscribers"].values())
    subscribers = dedup("exacttarget_subscribers", run.records["exacttarget_subscribers"])
    assert subscribers == want_subscribers
    # A spooled stream the pipeline leaves alone is still whole.
    clicks = dedup("exacttarget_clicks", run.records["exacttarget_clicks"])
    assert clicks == expected["exacttarget_clicks"]


def test_a_batch_for_a_window_no_stream_plans_is_forgotten(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    stale = {"job_id": "5", "activity_start": "1999-01-01", "activity_end": "1999-01-07"}
    state = {"bookmarks": {"_exacttarget_batches": {"1999-01-01..1999-01-07": stale}}}
    run = run_tap(tmp_path, sandbox.tap_config(), state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.last_state is not None
    assert run.last_state["bookmarks"]["_exacttarget_batches"] == {}
    assert all(r["batch_id"] != "5" for r in sandbox.et_api.requests)
    assert_matches_truth(sandbox, run)


def test_batch_config_is_not_honoured_so_state_never_outruns_records(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = sandbox.tap_config()
    config["batch_config"] = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}/batches", "prefix": "b-"},
    }
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [m for m in run.messages if m["type"] == "BATCH"]
    assert_matches_truth(sandbox, run)
