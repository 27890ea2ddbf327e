"""Pinpointe end to end: the real tap CLI against the sandbox's JSON API and result links.

Every record is compared with the sandbox's ground truth (`expected_pinpointe`), including the
answer shapes the docs leave open (paging placement, job id and link keys, done words, JSON
holders, nested activity, CSV segments, time spellings).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.jobs import JobSettings
from vendor_sandbox.pinpointe.data import PinpointeDataSpec
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, discover, run_tap, run_tap_until
from .expected_pinpointe import RUN_COLUMNS, expected, keyed

STREAMS = (
    "pinpointe_lists",
    "pinpointe_segments",
    "pinpointe_tags",
    "pinpointe_newsletter_sends",
    "pinpointe_list_subscribers",
    "pinpointe_segment_subscribers",
    "pinpointe_tag_subscribers",
    "pinpointe_newsletter_activity",
)
LEDGER = "_pinpointe_jobs"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", acoustic=None, pinpointe=PinpointeDataSpec()) as sandbox:
        yield sandbox


def config(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return box.tap_config(vendors=("pinpointe",), pinpointe_overrides=overrides)


def assert_equals_truth(
    box: Sandbox,
    run: TapRun,
    streams: tuple[str, ...] = STREAMS,
    *,
    no_membership: tuple[str, ...] = (),
) -> None:
    """Every stream's records, by key, equal the ground truth (run columns checked for shape).

    `no_membership`: streams read from CSV, which has no column for the membership object.
    """
    truth = expected(box.pinpointe_truth())
    for stream in no_membership:
        truth[stream] = [{**record, "membership": None} for record in truth[stream]]
    records = run.records
    for stream in streams:
        got = records.get(stream, [])
        assert keyed(stream, got) == keyed(stream, truth[stream]), stream
        for record in got:
            for column in RUN_COLUMNS:
                if column in record:
                    assert record[column], (stream, column)
            if "snapshot_at" in record:
                datetime.fromisoformat(record["snapshot_at"])


def test_a_full_sync_equals_the_ground_truth_and_leaves_no_job_in_state(
    box: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run)
    counts = box.ground_truth_counts(("pinpointe",))
    assert {s: len(run.records.get(s, [])) for s in STREAMS} == {s: counts[s] for s in STREAMS}
    state = run.last_state
    assert state is not None
    assert state["bookmarks"].get(LEDGER, {}) == {}
    bookmarks = state["bookmarks"]
    assert bookmarks["pinpointe_segment_subscribers"]["last_snapshot_at"]
    assert "snapshot" not in bookmarks["pinpointe_segment_subscribers"]
    assert set(bookmarks["pinpointe_list_subscribers"]["added_since"]) == set(
        box.pinpointe_dataset.list_ids()
    )
    # Activity has identical events: the ordinal keeps them apart.
    activity = run.records["pinpointe_newsletter_activity"]
    assert max(r["ordinal"] for r in activity) >= 1
    # One job per unit, each polled through AsyncJobStatus (never one call per job).
    units = Counter(entry.unit for entry in box.pinpointe_api.submission_log)
    assert units
    assert max(units.values()) == 1
    assert "Export jobs: poll round" in run.stderr


def test_a_second_run_reads_only_what_is_new_or_within_the_lookback(
    box: Sandbox, tmp_path: Path
) -> None:
    first = run_tap(tmp_path / "first", config(box))
    assert first.returncode == 0, first.stderr[-3000:]
    submitted = len(box.pinpointe_api.submission_log)
    second = run_tap(tmp_path / "second", config(box), state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    # The lists' ranges ended before today: no list is exported again.
    assert "pinpointe_list_subscribers" not in second.records
    units = [entry.unit for entry in box.pinpointe_api.submission_log[submitted:]]
    assert not [u for u in units if u.startswith("list:")]
    # Sends of the 7 days before the last one are read again, with the same keys and values.
    resent = second.records["pinpointe_newsletter_activity"]
    assert resent
    again = keyed("pinpointe_newsletter_activity", resent)
    once = keyed("pinpointe_newsletter_activity", first.records["pinpointe_newsletter_activity"])
    assert all(once[key] == record for key, record in again.items())
    last = first.last_state["bookmarks"]["pinpointe_newsletter_activity"]["last_send"]
    floor = datetime.fromisoformat(last["started_at"]).date().toordinal() - 7
    reread = {r["stat_id"] for r in resent}
    sends = {s["stat_id"]: s for s in first.records["pinpointe_newsletter_sends"]}
    assert reread == {
        stat
        for stat, send in sends.items()
        if datetime.fromisoformat(send["started_at"]).date().toordinal() >= floor
    }
    # Segments and tags are snapshots: every member again, stamped with the new snapshot time.
    assert_equals_truth(box, second, ("pinpointe_segment_subscribers", "pinpointe_tag_subscribers"))
    old = {r["snapshot_at"] for r in first.records["pinpointe_segment_subscribers"]}
    new = {r["snapshot_at"] for r in second.records["pinpointe_segment_subscribers"]}
    assert min(new) >= max(old)


def test_a_full_table_catalog_exports_every_list_from_start_date_again(
    box: Sandbox, tmp_path: Path
) -> None:
    first = run_tap(tmp_path / "first", config(box))
    assert first.returncode == 0
    catalog = discover(tmp_path / "discover", config(box))
    for entry in catalog["streams"]:
        entry["replication_method"] = "FULL_TABLE"
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = (
                    entry["tap_stream_id"] == "pinpointe_list_subscribers"
                )
                meta["metadata"]["forced-replication-method"] = "FULL_TABLE"
                meta["metadata"]["replication-method"] = "FULL_TABLE"
    again = run_tap(tmp_path / "again", config(box), first.last_state, catalog=catalog)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_equals_truth(box, again, ("pinpointe_list_subscribers",))


SHAPES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("paging inside data", {"pagination": "data"}, {}),
    ("paging at the top", {"pagination": "top"}, {}),
    ("job id as job_id", {"job_id_key": "job_id"}, {}),
    ("job id as jobId", {"job_id_key": "jobId"}, {}),
    ("job id as bare data", {"job_id_key": "bare"}, {}),
    ("link as downloadurl", {"link_key": "downloadurl"}, {}),
    ("link nested in result", {"link_key": "result.url"}, {}),
    ("relative links", {"relative_links": True}, {}),
    ("done word finished", {"done_word": "finished"}, {}),
    ("done word COMPLETED", {"done_word": "COMPLETED"}, {}),
    ("files as arrays", {"json_holder": "array"}, {}),
    ("files as holder objects", {"json_holder": "object"}, {}),
    ("files as JSON lines", {"json_holder": "lines"}, {}),
    ("nested activity, epoch times", {"activity": "nested", "time_style": "epoch"}, {}),
    ("zulu times", {"time_style": "zulu"}, {}),
    ("times with an offset", {"time_style": "offset"}, {}),
    ("segments as CSV", {}, {"segment_file_format": "csv"}),
]


@pytest.mark.parametrize(
    ("shapes", "settings"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES]
)
def test_every_documented_answer_shape_gives_the_same_records(
    box: Sandbox, tmp_path: Path, shapes: dict[str, Any], settings: dict[str, Any]
) -> None:
    for name, value in shapes.items():
        setattr(box.pinpointe_api.shapes, name, value)
    run = run_tap(tmp_path / "run", config(box, **settings))
    assert run.returncode == 0, run.stderr[-3000:]
    csv = ("pinpointe_segment_subscribers",) if settings.get("segment_file_format") else ()
    assert_equals_truth(box, run, no_membership=csv)
    assert "please report it" not in run.stderr  # every shape here is a known one


def many_units_box(tmp_path: Path) -> Sandbox:
    """60 units (20 lists, 15 segments, 15 tags, 10 sends), each job running about a second."""
    spec = PinpointeDataSpec(lists=20, segments=15, tags=15, subscribers=400, sends=10)
    jobs = JobSettings(queued=(0.3, 0.3), running=(1.0, 1.5), seed=3)
    return Sandbox(tmp_path / "many", acoustic=None, pinpointe=spec, pinpointe_jobs=jobs)


def test_fifty_jobs_in_flight_are_polled_together_with_status_paging(tmp_path: Path) -> None:
    with many_units_box(tmp_path) as box:
        run = run_tap(tmp_path / "run", config(box, max_jobs_in_flight=50, status_page_size=7))
        assert run.returncode == 0, run.stderr[-3000:]
        assert_equals_truth(box, run)
        api = box.pinpointe_api
        assert len(api.submission_log) == 60
        assert api.max_in_flight == 50
        # One AsyncJobStatus round asks about every waiting job, 7 to a page.
        asked = [ids for ids in api.status_jobids() if ids]
        assert max(len(ids) for ids in asked) >= 50
        pages = [
            c["details"].get("pagination", {}).get("next") for c in api.calls("AsyncJobStatus")
        ]
        assert "7" in pages
        assert "49" in pages
        # Each round's first page asks about every waiting job: many ids per round, not one.
        rounds = [
            ids
            for call, ids in zip(api.calls("AsyncJobStatus"), api.status_jobids(), strict=True)
            if ids and "next" not in call["details"].get("pagination", {})
        ]
        assert sum(len(ids) for ids in rounds) >= 10 * len(rounds)


def kill_points(clean: TapRun, rng: random.Random) -> list[tuple[str, int]]:
    records = sum(m["type"] == "RECORD" for m in clean.messages)
    states = sum(m["type"] == "STATE" for m in clean.messages)
    rounds = clean.stderr.count("Export jobs: poll round")
    points: list[tuple[str, int]] = []
    for _ in range(KILLS):
        kind = rng.choice(["record", "state", "round"])
        if kind == "record":
            points.append((kind, rng.randint(1, records - 1)))
        elif kind == "state":
            points.append((kind, rng.randint(1, states - 1)))
        else:
            points.append((kind, rng.randint(1, max(1, rounds - 1))))
    return points


def stopper(kind: str, n: int) -> dict[str, Any]:
    if kind == "round":
        seen: list[str] = []

        def on_log(line: str) -> bool:
            if "Export jobs: poll round" in line:
                seen.append(line)
            return len(seen) >= n

        return {"stop_on_log": on_log}
    want = "RECORD" if kind == "record" else "STATE"

    def on_message(message: dict[str, Any], so_far: list[dict[str, Any]]) -> bool:
        return message.get("type") == want and sum(m.get("type") == want for m in so_far) >= n

    return {"stop_on_message": on_message}


KILLS = 8
KILL_SEED = 20261203


def test_seeded_kills_while_jobs_are_in_flight_resume_to_the_exact_data(
    tmp_path: Path,
) -> None:
    spec = PinpointeDataSpec(lists=4, segments=3, tags=3, sends=6)
    jobs = JobSettings(queued=(0.05, 0.05), running=(0.2, 0.6), seed=5)
    with Sandbox(tmp_path / "box", acoustic=None, pinpointe=spec, pinpointe_jobs=jobs) as box:
        settings = config(box, max_jobs_in_flight=6, activity_lookback_days=0)
        clean = run_tap(tmp_path / "clean", settings)
        assert clean.returncode == 0, clean.stderr[-3000:]
        assert_equals_truth(box, clean)
        for i, (kind, n) in enumerate(kill_points(clean, random.Random(KILL_SEED))):
            before = len(box.pinpointe_api.submission_log)
            killed = run_tap_until(tmp_path / f"kill-{i}", settings, **stopper(kind, n))
            in_flight = ((killed.last_state or {}).get("bookmarks", {})).get(LEDGER, {})
            middle = len(box.pinpointe_api.submission_log)
            resumed = run_tap(tmp_path / f"resume-{i}", settings, state=killed.last_state)
            assert resumed.returncode == 0, (kind, n, resumed.stderr[-3000:])
            assert_union_equals_truth(box, killed, resumed)
            after = [e.unit for e in box.pinpointe_api.submission_log[middle:]]
            # A job in state when the tap died is resumed, never submitted again.
            assert not set(after) & set(in_flight), (kind, n, in_flight)
            # Incremental units (lists by day added, sends) are exported once across both runs.
            both = Counter(e.unit for e in box.pinpointe_api.submission_log[before:])
            twice = [u for u, c in both.items() if c > 1 and u.startswith(("list:", "send:"))]
            assert not twice, (kind, n, twice)
            assert (resumed.last_state or {})["bookmarks"][LEDGER] == {}


def assert_union_equals_truth(box: Sandbox, *runs: TapRun) -> None:
    """What an upserting target holds after loading the runs in order equals the truth."""
    truth = expected(box.pinpointe_truth())
    for stream in STREAMS:
        held: dict[tuple[Any, ...], dict[str, Any]] = {}
        for run in runs:
            held.update(keyed_last(stream, run.records.get(stream, [])))
        assert held == keyed(stream, truth[stream]), stream


def keyed_last(stream: str, records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Like `keyed`, but a key seen again (a unit re-read) keeps its last record."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        out.update(keyed(stream, [record]))
    return out


def test_subscriber_exports_can_be_switched_off_per_kind_and_limited_to_chosen_ids(
    box: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(
        tmp_path / "run", config(box, subscriber_exports=["lists", "segments"], segment_ids=["2"])
    )
    assert run.returncode == 0, run.stderr[-3000:]
    units = sorted(entry.unit for entry in box.pinpointe_api.submission_log)
    assert [u for u in units if not u.startswith("send:")] == [
        "list:1",
        "list:2",
        "list:3",
        "segment:2",
    ]
    assert "pinpointe_tag_subscribers" not in run.records
    assert {r["segment_id"] for r in run.records["pinpointe_segment_subscribers"]} == {"2"}
    truth = keyed(
        "pinpointe_segment_subscribers",
        expected(box.pinpointe_truth())["pinpointe_segment_subscribers"],
    )
    got = keyed("pinpointe_segment_subscribers", run.records["pinpointe_segment_subscribers"])
    assert got == {key: record for key, record in truth.items() if key[1] == "2"}
    assert_equals_truth(box, run, ("pinpointe_list_subscribers", "pinpointe_tags"))
