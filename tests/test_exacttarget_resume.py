"""ExactTarget crash recovery: SIGKILL the real tap CLI mid-sync, resume from the last STATE.

A crash may come at any moment: while a batch is polled, while its ZIP downloads, while records
stream out, between two streams that share a window's export. Whatever a target had received when
the tap died (the records and the last STATE before the kill) plus one run from that STATE must be
the sandbox's ground truth, exactly. And an in-flight batch is resumed, never submitted again:
its id was written to STATE before the first poll. The sync submits the batches of all three
windows at its start, so a crash anywhere leaves all of them in flight until they are used: across
a killed run and its resume, every window's batch is submitted exactly once.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap, run_tap_until
from .expected import EVENT_TIME, expected_records, key
from .test_exacttarget_flow import STREAMS, assert_matches_truth

LEDGER = "_exacttarget_batches"
BOOKMARK = "next_window_start"
WINDOW_1 = (date(2024, 1, 1), date(2024, 1, 7))
WINDOW_2 = (date(2024, 1, 8), date(2024, 1, 14))
WINDOW_3 = (date(2024, 1, 15), date(2024, 1, 21))
END_BOOKMARK = "2024-01-22"
# The batches a sync submits at its start, one per window, in plan order.
BATCHES = {WINDOW_1: "979804", WINDOW_2: "979805", WINDOW_3: "979806"}


def config_for(sandbox: Sandbox, tmp_path: Path, **exacttarget: Any) -> dict[str, Any]:
    """The sandbox config, with temporary files under the test's folder (a kill leaves them)."""
    config = sandbox.tap_config(exacttarget.pop("protocol", "sftp"), **exacttarget)
    temp = tmp_path / "tap-tmp"
    temp.mkdir(exist_ok=True)
    config["temp_dir"] = str(temp)
    return config


def ledger_of(state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The in-flight batches a STATE names."""
    if state is None:
        return {}
    ledger: dict[str, dict[str, Any]] = state.get("bookmarks", {}).get(LEDGER, {})
    return ledger


def in_flight_windows(state: dict[str, Any] | None) -> dict[tuple[date, date], str]:
    """Activity window -> batch id of every batch a STATE holds in flight."""
    return {
        (date.fromisoformat(e["activity_start"]), date.fromisoformat(e["activity_end"])): str(
            e["job_id"]
        )
        for e in ledger_of(state).values()
    }


def bookmark(state: dict[str, Any] | None, stream: str) -> str | None:
    if state is None:
        return None
    value = state.get("bookmarks", {}).get(stream, {}).get(BOOKMARK)
    return None if value is None else str(value)


def record_count(messages: list[dict[str, Any]], stream: str | None = None) -> int:
    return sum(
        1 for m in messages if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
    )


def assert_state_never_ahead(sandbox: Sandbox, *runs: TapRun) -> None:
    """At every STATE, each event stream has emitted every event before its bookmark day.

    Events carry their activity time, and an export holds exactly the events of its activity
    window, so "bookmark at day D" means "every event of this stream before D was written". The
    runs are read in order, as one target would have received them.
    """
    expected = expected_records(sandbox.exacttarget_truth(), ZoneInfo(sandbox.ET_TIMEZONE))
    day_of = {
        f"exacttarget_{kind}": {
            k: str(r[time_field])[:10] for k, r in expected[f"exacttarget_{kind}"].items()
        }
        for kind, time_field in EVENT_TIME.items()
    }
    emitted: dict[str, set[tuple[Any, ...]]] = {stream: set() for stream in day_of}
    states = 0
    for run in runs:
        for message in run.messages:
            if message["type"] == "RECORD" and message["stream"] in emitted:
                emitted[message["stream"]].add(key(message["stream"], message["record"]))
            elif message["type"] == "STATE":
                states += 1
                for stream, days in day_of.items():
                    mark = bookmark(message["value"], stream)
                    if mark is None:
                        continue
                    owed = {k for k, day in days.items() if day < mark}
                    missing = owed - emitted[stream]
                    assert not missing, (
                        f"STATE #{states} puts {stream} at {mark} but {len(missing)} earlier "
                        f"events were not emitted, e.g. {sorted(missing)[:2]}"
                    )


def assert_each_window_submitted_once(sandbox: Sandbox) -> None:
    """Across every run against this sandbox, each window's batch was submitted exactly once."""
    submitted = Counter(
        r["daterange"] for r in sandbox.et_api.requests if r["action"] == "BulkAsync"
    )
    assert submitted == Counter(dict.fromkeys(BATCHES, 1)), submitted


def resume(sandbox: Sandbox, tmp_path: Path, killed: TapRun, config: dict[str, Any]) -> TapRun:
    """Run again from the killed run's last STATE and check that nothing was lost or redone.

    * the union of both runs' records is the ground truth, exactly;
    * no STATE of either run put a bookmark ahead of the records emitted before it;
    * every batch the STATE held in flight is polled again under its id, not resubmitted;
    * across both runs each window's batch was submitted exactly once;
    * the resumed run ends with every stream at the end of the data and no batch left in state.
    """
    assert killed.returncode == -9, killed.stderr[-3000:]
    state = killed.last_state
    in_flight = in_flight_windows(state)
    first_request = len(sandbox.et_api.requests)
    again = run_tap(tmp_path / "resumed", config, state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_matches_truth(sandbox, killed, again)
    assert_state_never_ahead(sandbox, killed, again)
    requests = sandbox.et_api.requests[first_request:]
    submitted = [r["daterange"] for r in requests if r["action"] == "BulkAsync"]
    polled = {r["batch_id"] for r in requests if r["action"] == "inquire"}
    for window, batch_id in in_flight.items():
        assert window not in submitted, f"window {window} was submitted again: {submitted}"
        assert batch_id in polled, f"batch {batch_id} of {window} was not resumed"
        assert f"resuming job {batch_id}" in again.stderr
    assert_each_window_submitted_once(sandbox)
    final = again.last_state
    assert final is not None
    assert ledger_of(final) == {}, "a batch id was left behind in state"
    for stream in STREAMS:
        assert bookmark(final, stream) == END_BOOKMARK, stream
    return again


def test_killed_while_polling_resumes_the_same_batch(sandbox: Sandbox, tmp_path: Path) -> None:
    """Kill while the first batch is still processing: the next run polls that batch again."""
    sandbox.et_api.faults.never_completes = True
    config = config_for(sandbox, tmp_path)
    killed = run_tap_until(
        tmp_path / "killed",
        config,
        stop_on_log=lambda line: re.search(r"is Processing \(poll [3-9]", line) is not None,
    )
    # Every window's batch was submitted at the start and reached STATE.
    assert sandbox.et_api.submissions == 3
    assert in_flight_windows(killed.last_state) == BATCHES
    assert record_count(killed.messages) == 0

    sandbox.et_api.faults.never_completes = False
    resume(sandbox, tmp_path, killed, config)
    # Three windows, three batches in all: every one was resumed, none submitted twice.
    assert sandbox.et_api.submissions == 3


def test_killed_after_30_records_resumes_to_complete_data(sandbox: Sandbox, tmp_path: Path) -> None:
    """Kill in the middle of the first stream's second window (it has 14 records in the first)."""
    config = config_for(sandbox, tmp_path)
    killed = run_tap_until(
        tmp_path / "killed",
        config,
        stop_on_message=lambda _message, messages: record_count(messages) >= 30,
    )
    assert record_count(killed.messages) == 30
    state = killed.last_state
    # The first stream committed window 1 only; every window is in flight (window 1 until the
    # other streams have read it).
    assert bookmark(state, "exacttarget_bounces") == "2024-01-08"
    assert in_flight_windows(state) == BATCHES
    resume(sandbox, tmp_path, killed, config)


def test_killed_right_after_the_first_window_commit(sandbox: Sandbox, tmp_path: Path) -> None:
    """Kill at the very STATE that commits the first stream's first window."""
    config = config_for(sandbox, tmp_path)
    killed = run_tap_until(
        tmp_path / "killed",
        config,
        stop_on_message=lambda message, _messages: (
            message["type"] == "STATE"
            and bookmark(message["value"], "exacttarget_bounces") == "2024-01-08"
        ),
    )
    state = killed.last_state
    assert killed.messages[-1]["type"] == "STATE"
    assert record_count(killed.messages, "exacttarget_bounces") == 14
    assert in_flight_windows(state) == BATCHES
    resume(sandbox, tmp_path, killed, config)


def test_killed_while_a_dropped_download_waits_to_retry(sandbox: Sandbox, tmp_path: Path) -> None:
    """Kill mid-download: the transfer was cut after 4 KB and the tap is waiting to resume it.

    Plain FTP, because it cuts the transfer at exactly that byte; the next run fetches the file
    of the same batch again.
    """
    sandbox.download_faults.arm(drop_after_bytes=4096, times=1000)
    config = config_for(sandbox, tmp_path, protocol="ftp")
    killed = run_tap_until(
        tmp_path / "killed",
        config,
        stop_on_log=lambda line: "(attempt 1 of" in line,
    )
    assert sandbox.download_faults.downloads_started == 1
    assert record_count(killed.messages) == 0
    assert in_flight_windows(killed.last_state) == BATCHES

    sandbox.download_faults.reset()
    resume(sandbox, tmp_path, killed, config)
    assert sandbox.et_api.submissions == 3


def test_killed_as_the_second_window_starts_downloading(sandbox: Sandbox, tmp_path: Path) -> None:
    """Kill as soon as the second window's ZIP download begins."""
    config = config_for(sandbox, tmp_path)
    downloads = []

    def second_download(line: str) -> bool:
        if re.search(r": downloading \S+\.zip from ", line):
            downloads.append(line)
        return len(downloads) == 2

    killed = run_tap_until(tmp_path / "killed", config, stop_on_log=second_download)
    state = killed.last_state
    # Killed within milliseconds of the log line: at the latest while window 2 was parsed.
    assert bookmark(state, "exacttarget_bounces") in {"2024-01-08", "2024-01-15"}
    assert in_flight_windows(state) == BATCHES
    resume(sandbox, tmp_path, killed, config)


def test_killed_in_the_second_stream_resumes_every_shared_batch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Kill while the second stream reads window 1 from the export the first stream parsed.

    The first stream has committed all three windows; the others have read none. Their batches
    must all still be in state and be resumed: the next run submits nothing for those windows.
    """
    config = config_for(sandbox, tmp_path)
    killed = run_tap_until(
        tmp_path / "killed",
        config,
        stop_on_message=lambda _message, messages: (
            record_count(messages, "exacttarget_clicks") >= 5
        ),
    )
    state = killed.last_state
    assert bookmark(state, "exacttarget_bounces") == END_BOOKMARK
    for stream in STREAMS:
        if stream != "exacttarget_bounces":
            assert bookmark(state, stream) is None, stream
    assert in_flight_windows(state) == BATCHES
    before = sandbox.et_api.submissions
    resume(sandbox, tmp_path, killed, config)
    # The first stream's lookback day falls inside window 3, whose batch is still in flight:
    # it reuses that batch, so nothing at all is submitted afresh.
    assert sandbox.et_api.submissions - before == 0


def test_a_resumed_run_exports_no_day_of_an_in_flight_batch_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """After a crash, windows line up with the batches in flight instead of overlapping them.

    The first stream's bookmark is 2024-01-08 and its lookback day 2024-01-07; every window's
    batch is in flight, so a window that did not line up with them would be a new submission.
    """
    config = config_for(sandbox, tmp_path)
    killed = run_tap_until(
        tmp_path / "killed",
        config,
        stop_on_message=lambda message, _messages: (
            message["type"] == "STATE"
            and bookmark(message["value"], "exacttarget_bounces") == "2024-01-08"
        ),
    )
    assert in_flight_windows(killed.last_state) == BATCHES
    first_request = len(sandbox.et_api.requests)
    resume(sandbox, tmp_path, killed, config)
    submitted = [
        r["daterange"]
        for r in sandbox.et_api.requests[first_request:]
        if r["action"] == "BulkAsync"
    ]
    assert submitted == []
