"""An empty BEX file is not a finished file: it is left alone until it has content, then read.

A file is created before it is written; marking a 0-byte file done would lose every row written
into it later. A file with only its header is a finished file of a period without events.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tap_emailtracking.transports.files import RemoteFile, open_file_site
from tap_emailtracking.vendors.acoustic.bex import BexFile, empty_files, settled
from vendor_sandbox.sandbox import Sandbox

from .conftest import run_tap
from .file_servers_fixtures import SMALL_NAME, running_file_servers
from .test_acoustic_flow import STREAM, assert_matches_truth, config

NOON = datetime(2024, 1, 2, 12, tzinfo=timezone.utc)


def test_an_empty_file_is_never_settled_a_header_only_file_is() -> None:
    listing = [
        RemoteFile("empty.csv", 0, NOON),
        RemoteFile("header-only.csv", 40, NOON),
        RemoteFile("no-size.csv", None, NOON),
    ]
    assert settled(listing, listing) == {"header-only.csv", "no-size.csv"}


def test_a_file_listed_without_a_size_is_asked_about(tmp_path: Path) -> None:
    with running_file_servers(tmp_path) as servers:
        (servers.root / "empty.csv").write_bytes(b"")
        files = [BexFile("20240102120000", name, None) for name in ("empty.csv", SMALL_NAME)]
        with open_file_site(servers.settings("sftp"), vendor="acme") as site:
            assert empty_files(files, site.size) == {"empty.csv"}  # a real SFTP stat each
    asked: list[str] = []

    def size_of(name: str) -> int | None:
        asked.append(name)
        return None

    sized = [BexFile("20240102120000", "x.csv", 0), BexFile("20240102120000", "y.csv", 9)]
    assert empty_files(sized, size_of) == {"x.csv"}
    assert asked == []  # sizes from the listing are trusted: no extra round trip
    assert empty_files([BexFile("20240102120000", "z.csv", None)], size_of) == set()
    assert asked == ["z.csv"]  # a server that cannot tell: the file is read, not skipped


def test_an_empty_file_is_skipped_then_read_once_it_has_rows(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        api = box.acoustic_api
        assert api is not None
        names = sorted(box.acoustic_truth_by_file())
        empty = names[len(names) // 2]
        api.faults.empty_file = empty
        api.apply_faults()
        assert (api.download_dir / empty).stat().st_size == 0

        first = run_tap(tmp_path / "first", config(box))
        assert first.returncode == 0, first.stderr[-3000:]
        assert f"Acoustic: {empty} is empty; left for the next run" in first.stderr
        assert empty not in {r["source_file"] for r in first.records[STREAM]}
        marker = (first.last_state or {})["bookmarks"][STREAM]["bex_files"]
        assert empty not in marker["done"]
        assert marker["watermark"] > empty.split("_")[-2]  # newer files were done after it

        api.faults.empty_file = None  # the vendor writes the rows now
        api.apply_faults()
        second = run_tap(tmp_path / "second", config(box), state=first.last_state)
        assert second.returncode == 0, second.stderr[-3000:]
        assert {r["source_file"] for r in second.records[STREAM]} == {empty}
        assert len(second.records[STREAM]) == len(box.acoustic_truth_by_file()[empty]) > 0
        assert_matches_truth(box, first, second)


def test_an_empty_file_older_than_the_history_is_still_read_once_it_has_rows(
    tmp_path: Path,
) -> None:
    """A file seen empty is remembered: it never counts as done by age, only once read."""
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        api = box.acoustic_api
        assert api is not None
        names = sorted(box.acoustic_truth_by_file())
        empty = names[len(names) // 2]
        api.faults.empty_file = empty
        api.apply_faults()
        settings = config(box)
        settings["acoustic"]["marker_history_days"] = 0  # every file older than the newest is old

        first = run_tap(tmp_path / "first", settings)
        assert first.returncode == 0, first.stderr[-3000:]
        marker = (first.last_state or {})["bookmarks"][STREAM]["bex_files"]
        assert marker["watermark"] > empty.split("_")[-2]  # the empty file is past the history
        assert empty in marker["empty"]

        api.faults.empty_file = None  # the vendor writes the rows now
        api.apply_faults()
        second = run_tap(tmp_path / "second", settings, state=first.last_state)
        assert second.returncode == 0, second.stderr[-3000:]
        assert {r["source_file"] for r in second.records[STREAM]} == {empty}
        assert len(second.records[STREAM]) == len(box.acoustic_truth_by_file()[empty]) > 0
        assert_matches_truth(box, first, second)
        final = (second.last_state or {})["bookmarks"][STREAM]["bex_files"]
        assert "empty" not in final  # read now: an ordinary done file
