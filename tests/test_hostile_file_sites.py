"""Hostile file-site listings: an entry whose name could leave the folder is skipped, not fatal.

The shared home (`FileSite.list_files`) drops such entries with a warning that shows the name as
a repr (so CR/LF are visible) and counts them for the end-of-run summary; every other file is
listed and read. Real servers: the sandbox's SFTP and FTP servers list real files with hostile
names and, through a fault switch, names no real folder could hold (`..`, `../x`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from tap_emailtracking import summary
from tap_emailtracking.transports.files import UNSAFE_ENTRIES, open_file_site
from tap_emailtracking.transports.ftp import FtpFileSite
from vendor_sandbox.sandbox import Sandbox

from .conftest import run_tap
from .file_servers_fixtures import BIG_NAME, SMALL_NAME, FileServers, running_file_servers
from .test_acoustic_flow import assert_matches_truth, config

VENDOR = "acme"
BACKSLASH = "evil\\..\\notes.txt"  # a real file: backslashes are legal in POSIX names
CRLF = "evil\r\nDELE notes.txt"  # a real file: so are CR and LF
INJECTED = ["..", "../notes.txt", "/etc/passwd.txt", "a/../../b.txt"]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[FileServers]:
    with running_file_servers(tmp_path) as running:
        (running.root / BACKSLASH).write_bytes(b"x")
        yield running


@pytest.fixture(autouse=True)
def _fresh_summary() -> Iterator[None]:
    summary.reset()
    yield
    summary.reset()


def warned_names(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipped the entry" in r.getMessage()]


@pytest.mark.parametrize("protocol", ["sftp", "ftp", "ftps"])
def test_hostile_entries_are_skipped_warned_and_counted_once(
    servers: FileServers,
    protocol: Literal["ftp", "ftps", "sftp"],
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers.faults.listing_extra = list(INJECTED)
    hostile = [BACKSLASH, *INJECTED]
    if protocol == "sftp":
        (servers.root / CRLF).write_bytes(b"x")  # FTP lines cannot carry CR/LF at all
        hostile.append(CRLF)
        hostile.remove("..")  # paramiko drops `.` and `..` itself, silently and safely
    caplog.set_level(logging.WARNING, logger="tap_emailtracking.transports")
    with open_file_site(servers.settings(protocol), vendor=VENDOR, sleep=lambda _: None) as site:
        first = site.list_files()
        second = site.list_files()  # BEX lists twice: one warning and one count per entry
    assert [f.name for f in first] == [BIG_NAME, SMALL_NAME]
    assert second == first
    messages = warned_names(caplog)
    assert len(messages) == len(hostile)
    for name in hostile:
        assert any(repr(name) in m for m in messages), name
    assert all(m.startswith(f"{VENDOR}: skipped the entry ") for m in messages)
    assert summary.counts() == {(VENDOR, UNSAFE_ENTRIES): len(hostile)}


def test_ftp_nlst_never_sends_a_hostile_name_in_a_command(servers: FileServers) -> None:
    servers.faults.listing_extra = ["../notes.txt"]
    site = open_file_site(servers.settings("ftp"), vendor=VENDOR, sleep=lambda _: None)
    assert isinstance(site, FtpFileSite)
    with site:
        site._connect()
        files = {f.name: f for f in site._list_nlst("/")}
    # Listed with no size: no SIZE or MDTM was sent for it; `list_files` then skips it.
    assert files["../notes.txt"].size is None
    assert files[BACKSLASH].size is None
    assert files[SMALL_NAME].size is not None


# -- Acoustic BEX through the CLI -----------------------------------------------------------------


def test_bex_reads_every_file_around_hostile_sftp_entries(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        files = sorted(box.acoustic_truth_by_file())
        folder = box.acoustic_api.download_dir  # type: ignore[union-attr]
        # Names that look like BEX files of the definition: without the rule they would be read.
        backslash = files[0].replace(".csv", "\\.csv")
        crlf = files[1].replace(".csv", "\r\n.csv")
        injected = "../" + files[2]
        for name in (backslash, crlf):
            (folder / name).write_bytes((folder / files[0]).read_bytes())
        box.download_faults.listing_extra = [injected, ".."]
        run = run_tap(tmp_path / "run", config(box))
        assert run.returncode == 0, run.stderr[-3000:]
        assert_matches_truth(box, run)  # every real file, nothing from the hostile ones
        warnings = [line for line in run.stderr.splitlines() if "skipped the entry" in line]
        assert len(warnings) == 3, warnings
        for name in (backslash, crlf, injected):
            assert any(repr(name) in line for line in warnings), name
        assert all(" | WARNING " in line and "Acoustic" in line for line in warnings)
