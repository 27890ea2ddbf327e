"""Mailkit end to end: the real tap CLI against the sandbox's JSON API, paged by the last id."""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.mailkit.data import BOUNCES, MESSAGES, RESPONSES, MailkitDataSpec
from vendor_sandbox.mailkit.faults import Growth
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap, run_tap_until
from .expected_mailkit import KEYS, assert_matches, emitted, expected

RAW = ("mailkit_bounces", "mailkit_messages", "mailkit_responses")
STREAMS = (*RAW, "mailkit_campaigns", "mailkit_sends")
FUNCTIONS = {
    "mailkit_bounces": BOUNCES,
    "mailkit_messages": MESSAGES,
    "mailkit_responses": RESPONSES,
}


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", acoustic=None, pinpointe=None) as sandbox:
        yield sandbox


def config(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return box.tap_config(vendors=("mailkit",), mailkit_overrides={"page_size": 250, **overrides})


def assert_equals_truth(
    box: Sandbox, *runs: TapRun, streams: tuple[str, ...] = STREAMS, **filters: Any
) -> None:
    """What an upserting target holds after the runs equals the truth, record for record; within
    one run no key is emitted twice."""
    want = expected(box.mailkit_truth(**filters), box.mailkit_dataset.spec.timezone)
    for stream in streams:
        held: dict[int, dict[str, Any]] = {}
        for run in runs:
            held.update(emitted(run.records.get(stream, []), stream))
        assert_matches(stream, held, want[stream])


def test_a_full_sync_walks_every_page_and_equals_the_ground_truth(
    box: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run)
    counts = box.ground_truth_counts(("mailkit",))
    assert {s: len(run.records.get(s, [])) for s in STREAMS} == counts
    bookmarks = run.last_state["bookmarks"]
    for stream in RAW:
        ids = [r[KEYS[stream]] for r in run.records[stream]]
        assert ids == sorted(ids)
        assert bookmarks[stream]["last_ids"] == {"all": ids[-1]}
    api = box.mailkit_api
    pages = api.calls(MESSAGES)
    assert len(pages) == -(-counts["mailkit_messages"] // 250) + (
        counts["mailkit_messages"] % 250 == 0
    )
    # Each page asks from the last id emitted (inclusive in Mailkit, so that row is dropped).
    starts = [call["parameters"].get("ID_send_message") for call in pages]
    assert starts[0] is None
    assert starts[1] == str(run.records["mailkit_messages"][249]["id_send_message"])
    assert api.max_in_flight == 1


def test_a_page_boundary_exactly_at_the_cap_ends_on_an_empty_page(tmp_path: Path) -> None:
    spec = MailkitDataSpec(campaigns=1, sends_per_campaign=2, recipients_per_send=12_500)
    with Sandbox(tmp_path / "box", acoustic=None, pinpointe=None, mailkit=spec) as box:
        assert box.mailkit_counts()["mailkit_messages"] == 25_000
        run = run_tap(tmp_path / "run", box.tap_config(vendors=("mailkit",)), timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert_equals_truth(box, run, streams=("mailkit_messages",))
        calls = box.mailkit_api.calls(MESSAGES)
        # The second page starts at the last id emitted (inclusive): it holds only that row,
        # which is not emitted again, and being short it ends the walk.
        assert [call["rows"] for call in calls] == [25_000, 1]
        last = run.records["mailkit_messages"][-1]["id_send_message"]
        assert calls[1]["parameters"]["ID_send_message"] == str(last)
        assert calls[0]["parameters"]["limit"] == "25000"


def test_an_incremental_run_reads_only_new_rows_and_doubles_nothing_at_the_boundary(
    box: Sandbox, tmp_path: Path
) -> None:
    first = run_tap(tmp_path / "first", config(box))
    assert first.returncode == 0
    for function in (BOUNCES, MESSAGES, RESPONSES):
        box.mailkit_dataset.grow(function, 7)
    second = run_tap(tmp_path / "second", config(box), state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    for stream in RAW:
        assert len(second.records[stream]) == 7, stream
        first_keys = {r[KEYS[stream]] for r in first.records[stream]}
        assert not first_keys & {r[KEYS[stream]] for r in second.records[stream]}
    assert_equals_truth(box, first, second, streams=RAW)
    third = run_tap(tmp_path / "third", config(box), state=second.last_state)
    assert not any(third.records.get(stream) for stream in RAW)


def test_rows_arriving_during_a_run_end_the_run_and_the_next_run_reads_them(
    box: Sandbox, tmp_path: Path
) -> None:
    # After the 3rd raw call, 400 messages appear at the end; the walk is at page 3 of messages.
    box.mailkit_api.faults.growth = [Growth(3, MESSAGES, 400)]
    before = dict(box.mailkit_dataset.grown)
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert box.mailkit_dataset.grown != before
    again = run_tap(tmp_path / "again", config(box), state=run.last_state)
    assert again.returncode == 0
    assert_equals_truth(box, run, again, streams=RAW)
    emitted_ids = [
        r["id_send_message"]
        for r in (*run.records["mailkit_messages"], *again.records.get("mailkit_messages", []))
    ]
    assert len(emitted_ids) == len(set(emitted_ids))


def test_filters_keep_their_own_bookmarks_and_a_changed_filter_starts_afresh(
    box: Sandbox, tmp_path: Path
) -> None:
    campaigns = [str(c["ID_MESSAGE"]) for c in box.mailkit_truth()["mailkit_campaigns"]]
    one = run_tap(tmp_path / "one", config(box, campaign_ids=campaigns[:1]))
    assert one.returncode == 0, one.stderr[-3000:]
    assert_equals_truth(box, one, streams=RAW, campaign_ids=campaigns[:1])
    key = f"ID_message={campaigns[0]}"
    assert set(one.last_state["bookmarks"]["mailkit_bounces"]["last_ids"]) == {key}
    two = run_tap(tmp_path / "two", config(box, campaign_ids=campaigns[1:2]), state=one.last_state)
    assert two.returncode == 0
    assert_equals_truth(box, two, streams=RAW, campaign_ids=campaigns[1:2])
    kept = two.last_state["bookmarks"]["mailkit_bounces"]["last_ids"]
    assert set(kept) == {key, f"ID_message={campaigns[1]}"}
    assert f"bookmark of filter {key} kept" in two.stderr
    calls = box.mailkit_api.calls(BOUNCES)
    assert all(call["parameters"].get("ID_message") in campaigns[:2] for call in calls)


def test_a_page_out_of_order_is_sorted_and_the_bookmark_is_its_largest_id(
    box: Sandbox, tmp_path: Path
) -> None:
    box.mailkit_api.faults.shuffle_on = {RESPONSES: 2}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run, streams=RAW)
    ids = [r["id_log"] for r in run.records["mailkit_responses"]]
    assert ids == sorted(ids)
    assert "rows were not in id order; sorted" in run.stderr
    assert "1 pages sorted by id" in run.stderr


def test_calls_go_one_at_a_time_at_least_the_interval_apart(box: Sandbox, tmp_path: Path) -> None:
    run = run_tap(tmp_path / "run", config(box, page_size=1000, raw_call_interval_seconds=0.3))
    assert run.returncode == 0
    requests = box.mailkit_api.requests
    assert box.mailkit_api.max_in_flight == 1
    gaps = [b["time"] - a["time"] for a, b in pairwise(requests)]
    assert len(gaps) >= 6
    assert min(gaps) >= 0.29


KILLS = 6


def test_kills_between_pages_and_inside_a_page_resume_to_the_exact_data(
    box: Sandbox, tmp_path: Path
) -> None:
    settings = config(box, page_size=300)
    clean = run_tap(tmp_path / "clean", settings)
    records = sum(m["type"] == "RECORD" for m in clean.messages)
    states = sum(m["type"] == "STATE" for m in clean.messages)
    rng = random.Random(20261203)
    points = [("STATE", rng.randint(1, states - 1)) for _ in range(KILLS // 2)]
    points += [("RECORD", rng.randint(1, records - 1)) for _ in range(KILLS // 2)]
    for i, (kind, n) in enumerate(points):

        def stop(
            message: dict[str, Any], so_far: list[dict[str, Any]], kind: str = kind, n: int = n
        ) -> bool:
            return message["type"] == kind and sum(m["type"] == kind for m in so_far) >= n

        killed = run_tap_until(tmp_path / f"kill-{i}", settings, stop_on_message=stop)
        resumed = run_tap(tmp_path / f"resume-{i}", settings, state=killed.last_state)
        assert resumed.returncode == 0, (kind, n, resumed.stderr[-3000:])
        # A kill inside a page re-reads that page (its bookmark had not moved): upserts.
        want = expected(box.mailkit_truth(), box.mailkit_dataset.spec.timezone)
        for stream in RAW:
            held: dict[int, dict[str, Any]] = {}
            for run in (killed, resumed):
                for record in run.records.get(stream, []):
                    held[record[KEYS[stream]]] = record
            assert_matches(stream, held, want[stream])
            emitted(resumed.records.get(stream, []), stream)  # no key twice within the resume
