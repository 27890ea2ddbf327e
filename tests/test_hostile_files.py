"""Hostile and broken result files end to end: the real tap CLI against a misbehaving sandbox.

ZIP and gzip bombs, ZIP members compressed by other methods or encrypted, deep XML nesting, a huge
XML text node, an endless line and an endless row stop the run with a `CorruptFileError`
naming the file and the limit's setting, and stay small while doing so; a job-based export
(ExactTarget batch, Acoustic RRDE job) is forgotten, so the next run submits it afresh, while the
jobs of the other windows, submitted ahead, stay in state and are resumed (the hostile file is
window 1's only); a BEX file (a standing export) is read again once it is replaced. An
undecodable byte is reported at its true line, and skip mode drops exactly that row. NUL
characters are removed and counted.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.acoustic.api import BexDamage
from vendor_sandbox.acoustic.data import AcousticDataSpec
from vendor_sandbox.sandbox import AcousticBexSetup, Sandbox

from .conftest import TapRun, parse_messages, run_tap, tap_command, tap_env
from .test_acoustic_flow import STREAM, assert_matches_truth, config, emitted_by_key
from .test_acoustic_flow import expected_by_key as bex_expected_by_key
from .test_acoustic_raw_and_resume import assert_raw_matches_truth, raw_config
from .test_exacttarget_faults import (
    FIRST_BATCH,
    FIRST_STREAM,
    LATER_BATCHES,
    aim_at_first_window,
    assert_resubmitted_first_window,
    error_message,
    kept_batches,
    recover,
)
from .test_missing_results import RRDE_DAY_1, RRDE_DAYS, rrde_jobs_kept

MB = 1_000_000


def bex_marker(run: TapRun) -> dict[str, Any]:
    state = run.last_state or {}
    marker: dict[str, Any] = state.get("bookmarks", {}).get(STREAM, {}).get("bex_files", {})
    return marker


def acoustic_error(run: TapRun) -> str:
    """The tap's one-line Acoustic error (the ERROR line that says what to do)."""
    assert run.returncode != 0, "the run should have failed"
    lines = [
        line.split(" | ", 3)[-1]
        for line in run.stderr.splitlines()
        if " | ERROR " in line and "What to do: " in line
    ]
    assert lines, run.stderr[-3000:]
    return lines[0]


@pytest.fixture
def acoustic(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        yield box


# -- ExactTarget: ZIP bombs and huge text nodes -----------------------------------------------


@pytest.mark.parametrize(
    ("limits", "bomb", "refusal"),
    [
        (
            {"max_member_bytes": 2 * MB},
            4 * MB,
            "expands to more than 2,000,000 bytes, over the limit max_member_bytes=2000000",
        ),
        ({}, 80 * MB, "times its compressed size"),
    ],
)
def test_a_zip_bomb_is_refused_and_its_batch_forgotten(
    sandbox: Sandbox, tmp_path: Path, limits: dict[str, int], bomb: int, refusal: str
) -> None:
    sandbox.et_api.faults.zip_bomb_bytes = bomb
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", {**sandbox.tap_config(), **limits})
    message = error_message(failed)
    result_file = sandbox.et_api.files[0].name
    assert message.startswith(
        f"ExactTarget / {FIRST_STREAM} (batch {FIRST_BATCH}, file {result_file}, activity 1/1/2024"
    )
    assert refusal in message
    if not limits:
        assert "over the limit max_expansion_ratio=500.0" in message
    assert "the export is requested again on the next run" in message
    assert "CorruptFileError" in failed.stderr
    assert failed.records == {}  # refused before a record was parsed
    assert kept_batches(failed) == LATER_BATCHES  # the batch is forgotten, the others stay

    sandbox.et_api.faults.zip_bomb_bytes = None
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


def test_a_huge_xml_text_node_is_refused_and_its_batch_forgotten(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.et_api.faults.huge_text_bytes = 3 * MB
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (batch {FIRST_BATCH}, file ")
    assert "a text node, tag or record element near line " in message
    assert "over the limit max_field_bytes=1048576" in message
    assert kept_batches(failed) == LATER_BATCHES

    sandbox.et_api.faults.huge_text_bytes = None
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


@pytest.mark.parametrize(
    ("method", "refusal"),
    [
        ("bzip2", "uses compression method 12 (bzip2); only stored and deflate are read"),
        ("lzma", "uses compression method 14 (LZMA); only stored and deflate are read"),
        ("deflate64", "uses compression method 9 (Deflate64); only stored and deflate are read"),
        ("encrypted", "is encrypted"),
    ],
)
def test_a_zip_member_of_another_method_or_encrypted_is_refused_and_its_batch_forgotten(
    sandbox: Sandbox, tmp_path: Path, method: str, refusal: str
) -> None:
    sandbox.et_api.faults.member_method = method
    sandbox.et_api.faults.zip_bomb_bytes = 4 * MB
    aim_at_first_window(sandbox)
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    result_file = sandbox.et_api.files[0].name
    assert message.startswith(
        f"ExactTarget / {FIRST_STREAM} (batch {FIRST_BATCH}, file {result_file}, activity 1/1/2024"
    )
    member = result_file.removesuffix(".zip") + ".xml"
    assert f".zip is damaged (member {member} {refusal}" in message
    assert failed.records == {}
    assert kept_batches(failed) == LATER_BATCHES  # the batch is forgotten, the others stay

    sandbox.et_api.faults.member_method = None
    sandbox.et_api.faults.zip_bomb_bytes = None
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


def run_measured(workdir: Path, config: dict[str, Any]) -> tuple[TapRun, float]:
    """The tap CLI run to completion, and its peak RSS in MB read by a small launcher (wait4)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / "out.jsonl", workdir / "err.log"
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(out), str(err), *tap_command(workdir, config)],
        capture_output=True,
        text=True,
        env=tap_env(),
        check=True,
        timeout=300,
    )
    report = json.loads(launched.stdout)
    stdout = out.read_text(encoding="utf-8")
    run = TapRun(report["rc"], stdout, err.read_text(encoding="utf-8"), parse_messages(stdout))
    return run, report["maxrss_kb"] / 1024


@pytest.mark.parametrize(
    ("fault", "value", "refusal"),
    [
        # 200 MB of spaces in ~200 bytes of bzip2, the headers stating 50 bytes: zipfile would
        # expand it in one call (2.1 GB RSS for 2 GB).
        ("member_method", "bzip2", "uses compression method 12 (bzip2)"),
        # Two million nested <a> (6 MB, stored): expat's stack alone would take ~260 MB.
        ("nesting_depth", 2_000_000, "nested more than 100 deep, over the limit max_xml_depth=100"),
    ],
)
def test_peak_memory_stays_small_on_hostile_zips_with_default_limits(
    sandbox: Sandbox, tmp_path: Path, fault: str, value: object, refusal: str
) -> None:
    setattr(sandbox.et_api.faults, fault, value)
    if fault == "member_method":
        sandbox.et_api.faults.zip_bomb_bytes = 200 * MB
    aim_at_first_window(sandbox)
    failed, peak_mb = run_measured(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (batch {FIRST_BATCH}, file ")
    assert refusal in message
    assert kept_batches(failed) == LATER_BATCHES  # the batch is forgotten, the others stay
    assert peak_mb <= 150, peak_mb
    print(f"peak RSS of the tap on {fault}={value}: {peak_mb:.0f} MB")

    setattr(sandbox.et_api.faults, fault, None)
    sandbox.et_api.faults.zip_bomb_bytes = None
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


# -- Acoustic RRDE: a ZIP bomb forgets the job --------------------------------------------------


def test_an_rrde_zip_bomb_is_refused_and_its_job_forgotten(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    api.faults.rrde_zip_bomb_bytes = 8 * MB
    api.faults.rrde_only_days = {RRDE_DAY_1}
    failed = run_tap(tmp_path / "one", {**raw_config(acoustic), "max_member_bytes": 4 * MB})
    message = acoustic_error(failed)
    assert message.startswith(f"Acoustic / {STREAM} (Raw Recipient Data Export ")
    assert "over the limit max_member_bytes=4000000" in message
    assert "the export is requested again on the next run" in message
    # Days 1-4 were submitted at the start and 5-7 as soon as 1-4 were done; only day 1's job
    # is forgotten.
    assert api.rrde_submissions == 7
    kept = rrde_jobs_kept(failed)
    assert sorted(kept) == RRDE_DAYS[1:]

    api.faults.rrde_zip_bomb_bytes = None
    again = run_tap(tmp_path / "two", raw_config(acoustic), state=failed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert api.rrde_submissions == 7 + 1  # the first window was submitted afresh, only it
    for job_id in kept.values():
        assert f"resuming job {job_id}" in again.stderr
    assert_raw_matches_truth(acoustic, failed, again)


# -- Acoustic BEX: gzip bombs, long lines, bad bytes, NULs --------------------------------------


def test_a_gzip_bomb_bex_file_is_refused_and_read_once_replaced(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    bomb = sorted(acoustic.acoustic_truth_by_file())[3]
    api.faults.damaged_files[bomb] = BexDamage("gzip_bomb", size=20 * MB)
    failed = run_tap(tmp_path / "one", {**config(acoustic), "max_member_bytes": 5 * MB})
    message = acoustic_error(failed)
    assert message.startswith(f"Acoustic / {STREAM} ({bomb}): ")
    assert (
        "expands to more than 5,000,000 bytes, over the limit max_member_bytes=5000000" in message
    )
    assert "the next run reads this file again" in message
    assert bomb not in bex_marker(failed).get("done", {})
    assert {r["source_file"] for r in failed.records[STREAM]} == set(
        sorted(acoustic.acoustic_truth_by_file())[:3]
    )  # the files before it, and nothing of the bomb

    del api.faults.damaged_files[bomb]
    again = run_tap(tmp_path / "two", config(acoustic), state=failed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_matches_truth(acoustic, failed, again)


LAUNCHER = r"""
import json, os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    process = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(process.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}))
"""


def test_peak_memory_stays_small_on_a_gzip_bomb_with_default_limits(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    """1 GB of blank lines in ~1 MB of gzip: refused by the ratio limit, RSS stays flat.

    A small launcher process starts the tap and reads its peak RSS with `wait4`, so the memory
    of this test process (which a fork would copy) is not counted.
    """
    api = acoustic.acoustic_api
    assert api is not None
    bomb = sorted(acoustic.acoustic_truth_by_file())[0]
    api.faults.damaged_files[bomb] = BexDamage("gzip_bomb", size=1000 * MB)
    api.apply_faults()
    assert (api.download_dir / bomb).stat().st_size < 2 * MB
    command = tap_command(tmp_path, config(acoustic))
    out, err = tmp_path / "out.jsonl", tmp_path / "err.log"
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(out), str(err), *command],
        capture_output=True,
        text=True,
        env=tap_env(),
        check=True,
        timeout=300,
    )
    report = json.loads(launched.stdout)
    stderr = err.read_text(encoding="utf-8")
    assert report["rc"] != 0
    assert f"Acoustic / {STREAM} ({bomb}): " in stderr
    assert "over the limit max_expansion_ratio=500.0" in stderr
    assert report["maxrss_kb"] / 1024 <= 150, report
    print(f"peak RSS of the tap on a 1 GB gzip bomb: {report['maxrss_kb'] / 1024:.0f} MB")


def test_an_endless_line_is_refused_not_skipped(acoustic: Sandbox, tmp_path: Path) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    name = sorted(acoustic.acoustic_truth_by_file())[0]
    api.faults.damaged_files[name] = BexDamage("long_line", line=3, size=5 * MB)
    for on_bad_row in ("fail", "skip"):
        failed = run_tap(tmp_path / on_bad_row, config(acoustic, on_bad_row=on_bad_row))
        message = acoustic_error(failed)
        assert message.startswith(f"Acoustic / {STREAM} ({name}): line 3 is longer than ")
        assert "over the limit max_line_bytes=4194304" in message
        assert name not in bex_marker(failed).get("done", {})

    del api.faults.damaged_files[name]
    again = run_tap(tmp_path / "again", config(acoustic), state=failed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_matches_truth(acoustic, again)


def test_an_endless_row_over_many_lines_is_refused_not_skipped(
    acoustic: Sandbox, tmp_path: Path
) -> None:
    """5 MB of short quoted fields each holding a line break: no line or field is long."""
    api = acoustic.acoustic_api
    assert api is not None
    name = sorted(acoustic.acoustic_truth_by_file())[0]
    api.faults.damaged_files[name] = BexDamage("long_row", line=3, size=5 * MB)
    for on_bad_row in ("fail", "skip"):
        failed = run_tap(tmp_path / on_bad_row, config(acoustic, on_bad_row=on_bad_row))
        message = acoustic_error(failed)
        assert message.startswith(
            f"Acoustic / {STREAM} ({name}): the row starting at line 3 is longer than "
            "4,194,304 bytes, over the limit max_line_bytes=4194304"
        )
        assert name not in bex_marker(failed).get("done", {})

    del api.faults.damaged_files[name]
    again = run_tap(tmp_path / "again", config(acoustic), state=failed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_matches_truth(acoustic, again)


def first_row_from(path: Path, line: int) -> tuple[int, str]:
    """The physical line and eventId of the first row that starts at or after `line`."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        start = reader.line_num + 1
        for row in reader:
            if start >= line:
                return start, dict(zip(header, row, strict=True))["eventId"]
            start = reader.line_num + 1
    raise AssertionError(f"{path.name} has no row at or after line {line}")


@pytest.fixture
def one_big_file(tmp_path: Path) -> Iterator[Sandbox]:
    """One BEX file of about 7,200 rows (a day at 300 events an hour, rotated daily)."""
    spec = AcousticDataSpec(start=date(2024, 1, 1), end=date(2024, 1, 1), events_per_hour=300)
    with Sandbox(
        tmp_path / "sandbox",
        exacttarget=None,
        acoustic=spec,
        acoustic_bex=AcousticBexSetup(job_frequency_hours=24),
    ) as box:
        yield box


def test_a_bad_byte_is_reported_at_its_line_and_skip_drops_exactly_its_row(
    one_big_file: Sandbox, tmp_path: Path
) -> None:
    box = one_big_file
    api = box.acoustic_api
    assert api is not None
    (name,) = box.acoustic_truth_by_file()
    line, event_id = first_row_from(api.download_dir / name, 5001)
    assert event_id
    api.faults.damaged_files[name] = BexDamage("latin1", line=line)

    failed = run_tap(tmp_path / "one", config(box))
    message = acoustic_error(failed)
    assert message.startswith(
        f"Acoustic / {STREAM} ({name}): text that is not utf-8 (byte 0xE9 at column 2) "
        f"at line {line}. What to do: "
    )
    assert name not in bex_marker(failed).get("done", {})

    skipped = run_tap(tmp_path / "two", config(box, on_bad_row="skip"), state=failed.last_state)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert f"{name}: skipped a malformed row: text that is not utf-8" in skipped.stderr
    assert f"Acoustic: {name}: 1 malformed row(s) skipped" in skipped.stderr
    want = bex_expected_by_key(box)
    got = emitted_by_key(skipped)
    assert set(want) - set(got) == {event_id}  # exactly the bad row is missing
    assert set(got) <= set(want)
    assert name in bex_marker(skipped)["done"]


def test_nul_characters_are_removed_and_counted(acoustic: Sandbox, tmp_path: Path) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    name = sorted(acoustic.acoustic_truth_by_file())[1]
    api.faults.damaged_files[name] = BexDamage("nul", line=2, count=7)
    run = run_tap(tmp_path / "run", config(acoustic))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Acoustic: {name}: 7 NUL character(s) removed" in run.stderr
    assert "\\u0000" not in run.stdout
    assert_matches_truth(acoustic, run)  # every record equals the truth, NULs removed
