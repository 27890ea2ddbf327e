"""Acoustic end to end: the real tap CLI against the sandbox's OAuth, BEX REST, XML API and SFTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.acoustic.data import AcousticDataSpec
from vendor_sandbox.sandbox import AcousticBexSetup, Sandbox

from .conftest import TapRun, discover, run_tap, set_selected
from .expected_acoustic import bex_expected, without_lineage

STREAM = "acoustic_email_events"


def make_sandbox(tmp_path: Path, **kwargs: Any) -> Sandbox:
    return Sandbox(tmp_path / "sandbox", exacttarget=None, **kwargs)


@pytest.fixture
def acoustic(tmp_path: Path) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path) as box:
        yield box


def config(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return box.tap_config(vendors=("acoustic",), acoustic_overrides=overrides)


def expected_by_key(box: Sandbox) -> dict[str, dict[str, Any]]:
    columns = tuple(config(box)["acoustic"]["custom_columns"])
    out: dict[str, dict[str, Any]] = {}
    for rows in box.acoustic_truth_by_file().values():
        out.update(bex_expected(rows, columns))
    return out


def emitted_by_key(*runs: TapRun) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        for record in run.records.get(STREAM, []):
            out[record["event_id"]] = record
    return out


def assert_matches_truth(box: Sandbox, *runs: TapRun) -> None:
    want = expected_by_key(box)
    got = emitted_by_key(*runs)
    assert not want.keys() - got.keys(), f"missing {sorted(want.keys() - got.keys())[:3]}"
    assert not got.keys() - want.keys(), f"unexpected {sorted(got.keys() - want.keys())[:3]}"
    for key, record in want.items():
        assert without_lineage(got[key]) == record, key


def test_a_full_bex_sync_delivers_every_event_of_every_file(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    run = run_tap(tmp_path, config(acoustic))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(acoustic, run)
    files = set(acoustic.acoustic_truth_by_file())
    assert {r["source_file"] for r in run.records[STREAM]} == files
    marker = run.last_state["bookmarks"][STREAM]["bex_files"]  # type: ignore[index]
    assert marker["watermark"] == max(name.split("_")[-2] for name in files)
    # One token for the whole run, whatever the number of calls and SFTP logins.
    assert acoustic.acoustic_api.token_requests == 1


@pytest.mark.parametrize("fmt", ["PSV", "TSV"])
def test_every_file_format_is_read(tmp_path: Path, fmt: str) -> None:
    with make_sandbox(tmp_path, acoustic_bex=AcousticBexSetup(file_format=fmt)) as box:
        run = run_tap(tmp_path, config(box))
        assert run.returncode == 0, run.stderr[-3000:]
        assert_matches_truth(box, run)
        assert all(r["source_file"].endswith(fmt.lower()) for r in run.records[STREAM])


def test_new_files_and_a_late_file_are_read_once_each(tmp_path: Path) -> None:
    spec = AcousticDataSpec()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with make_sandbox(tmp_path, acoustic_files_until=start + timedelta(days=3)) as box:
        api = box.acoustic_api
        first = run_tap(tmp_path / "one", config(box))
        assert first.returncode == 0, first.stderr[-3000:]
        seen = {r["source_file"] for r in first.records[STREAM]}
        # Nothing new: a re-run reads nothing.
        again = run_tap(tmp_path / "two", config(box), state=first.last_state)
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.records.get(STREAM, []) == []
        # Two new periods arrive, and one file late with an older timestamp than the newest.
        late_period = start + timedelta(days=3, hours=4)
        api.faults.late_periods = {late_period}
        api.rotate_bex_files(start + timedelta(days=4))
        late_name = api.add_late_file(late_period)
        third = run_tap(tmp_path / "three", config(box), state=again.last_state)
        assert third.returncode == 0, third.stderr[-3000:]
        read = {r["source_file"] for r in third.records[STREAM]}
        assert late_name in read
        assert not read & seen, "a finished file was read again"
        assert_matches_truth(box, first, third)
        assert spec.start == start.date()


def test_a_file_still_being_written_is_left_for_the_next_run(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    api = acoustic.acoustic_api
    growing = sorted(acoustic.acoustic_truth_by_file())[-1]
    api.faults.growing_file = growing
    first = run_tap(tmp_path / "one", config(acoustic))
    assert first.returncode == 0, first.stderr[-3000:]
    assert growing not in {r["source_file"] for r in first.records[STREAM]}
    assert "still being written" in first.stderr
    api.faults.growing_file = None
    api.apply_faults()
    second = run_tap(tmp_path / "two", config(acoustic), state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {r["source_file"] for r in second.records[STREAM]} == {growing}
    assert_matches_truth(acoustic, first, second)


def test_a_malformed_row_fails_with_file_and_line_and_resumes(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    api = acoustic.acoustic_api
    broken = sorted(acoustic.acoustic_truth_by_file())[5]
    api.faults.malformed_row_in = broken
    api.apply_faults()
    failed = run_tap(tmp_path / "one", config(acoustic))
    assert failed.returncode != 0
    line = api.malformed_lines[broken]
    assert f"Acoustic / {STREAM} ({broken})" in failed.stderr
    assert f"at line {line}" in failed.stderr
    marker = (failed.last_state or {}).get("bookmarks", {}).get(STREAM, {}).get("bex_files", {})
    assert broken not in marker.get("done", {})
    # Opting in to skipping: the bad row is logged and counted, every event arrives.
    skipped = run_tap(
        tmp_path / "two", config(acoustic, on_bad_row="skip"), state=failed.last_state
    )
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "1 malformed row(s) skipped" in skipped.stderr
    assert_matches_truth(acoustic, failed, skipped)


def test_an_expired_token_is_refreshed_once_for_the_api_and_for_sftp(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    acoustic.acoustic_api.faults.expire_tokens_after_calls = 1
    run = run_tap(tmp_path, config(acoustic))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(acoustic, run)
    assert acoustic.acoustic_api.token_requests >= 2


def test_a_revoked_refresh_token_is_a_clear_error(acoustic: Sandbox, tmp_path: Path) -> None:
    acoustic.acoustic_api.faults.revoked_refresh_token = True
    run = run_tap(tmp_path, config(acoustic))
    assert run.returncode != 0
    assert "the OAuth token request was refused (invalid_grant)" in run.stderr
    assert "acoustic.refresh_token" in run.stderr
    creds = acoustic.credentials
    for secret in (creds.acoustic_client_secret, creds.acoustic_refresh_token):
        assert secret not in run.stdout + run.stderr


def test_a_missing_definition_is_reported_or_created(tmp_path: Path) -> None:
    with make_sandbox(tmp_path, acoustic_bex=None) as box:
        read_only = run_tap(tmp_path / "ro", config(box, manage_job_definition=False))
        assert read_only.returncode != 0
        assert "no BEX job definition exists for database" in read_only.stderr
        assert "manage_job_definition" in read_only.stderr
        managed = run_tap(tmp_path / "rw", config(box))
        assert managed.returncode == 0, managed.stderr[-3000:]
        assert box.acoustic_api.definition_posts == 1
        assert_matches_truth(box, managed)


def test_a_definition_that_differs_is_updated_only_when_managed(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    changed = config(acoustic, job_frequency_hours=12, manage_job_definition=False)
    run = run_tap(tmp_path / "ro", changed)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "differs from the settings" in run.stderr
    assert acoustic.acoustic_api.definition_puts == 0
    managed = config(acoustic, job_frequency_hours=12, manage_job_definition=True)
    run = run_tap(tmp_path / "rw", managed)
    assert run.returncode == 0, run.stderr[-3000:]
    assert acoustic.acoustic_api.definition_puts == 1


def test_only_the_chosen_event_types_are_emitted(acoustic: Sandbox, tmp_path: Path) -> None:
    run = run_tap(tmp_path, config(acoustic, event_types=["emailOpen", "emailClick"]))
    assert run.returncode == 0, run.stderr[-3000:]
    types = {r["event_type"] for r in run.records[STREAM]}
    assert types == {"emailOpen", "emailClick"}
    want = {k: v for k, v in expected_by_key(acoustic).items() if v["event_type"] in types}
    assert set(emitted_by_key(run)) == set(want)


def test_a_deselected_property_is_left_out_of_every_record(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    catalog = discover(tmp_path, config(acoustic))
    set_selected(catalog, ["properties", "user_agent"], lambda stream: False)
    run = run_tap(tmp_path, config(acoustic), catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    want = expected_by_key(acoustic)
    got = emitted_by_key(run)
    assert got.keys() == want.keys()
    assert any(record["user_agent"] for record in want.values())
    for event_id, record in got.items():
        assert "user_agent" not in record
        assert without_lineage(record) == {
            k: v for k, v in want[event_id].items() if k != "user_agent"
        }


@pytest.mark.parametrize("setting", ["stream_maps", "flattening"])
def test_stream_maps_and_flattening_still_apply_to_every_record(
    acoustic: Sandbox, tmp_path: Path, setting: str
) -> None:
    cfg = config(acoustic)
    if setting == "stream_maps":
        cfg["stream_maps"] = {
            STREAM: {"email_domain": "email.split('@')[-1] if email else None", "user_agent": None}
        }
    else:
        cfg["flattening_enabled"] = True
        cfg["flattening_max_depth"] = 1
    run = run_tap(tmp_path, cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    want = expected_by_key(acoustic)
    got = emitted_by_key(run)
    assert got.keys() == want.keys()
    for event_id, record in got.items():
        source = want[event_id]
        if setting == "stream_maps":
            assert "user_agent" not in record
            domain = source["email"].split("@")[-1] if source["email"] else None
            assert record["email_domain"] == domain
        else:  # an object without declared properties flattens to its JSON text
            assert isinstance(record["custom_columns"], str)
            assert json.loads(record["custom_columns"]) == source["custom_columns"]
