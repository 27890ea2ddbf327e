"""The Singer writer: RECORDs buffered in blocks, everything else written out at once, in order."""

from __future__ import annotations

import itertools
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from singer_sdk.singerlib import Message, RecordMessage, StateMessage

from tap_emailtracking import streams as streams_module
from tap_emailtracking.spools import SpoolWriter, read_spool
from tap_emailtracking.tap import TapEmailTracking
from tap_emailtracking.writer import BLOCK_BYTES, StateFlushingWriter
from vendor_sandbox.sandbox import Sandbox

WHEN = datetime(2026, 12, 3, 7, 0, 1, 123456, tzinfo=timezone.utc)
RECORD = {"id": "e-1", "n": 3, "none": None, "text": 'ünï "quoted"\n', "nested": {"a": [1, 2]}}


@pytest.mark.parametrize("version", [None, 1764745201000])
def test_write_record_writes_the_bytes_of_the_sdk_record_message(
    capsysbinary: pytest.CaptureFixture[bytes], version: int | None
) -> None:
    writer = StateFlushingWriter()
    writer.write_record("events", RECORD, version=version, time_extracted=WHEN)
    writer.write_message(
        RecordMessage(stream="events", record=RECORD, version=version, time_extracted=WHEN)
    )
    writer.flush_pending()
    first, second, rest = capsysbinary.readouterr().out.split(b"\n")
    assert first == second
    assert rest == b""
    assert b'"time_extracted":"2026-12-03T07:00:01.123456Z"' in first


def test_records_wait_for_the_next_state_which_follows_them(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    writer = StateFlushingWriter()
    writer.write_record("events", RECORD, version=None, time_extracted=WHEN)
    assert capsysbinary.readouterr().out == b""
    writer.write_message(StateMessage(value={"bookmarks": {"events": {"n": 1}}}))
    lines = capsysbinary.readouterr().out.splitlines()
    assert [line[:16] for line in lines] == [b'{"type":"RECORD"', b'{"type":"STATE",']


def test_records_are_written_in_blocks_so_memory_stays_bounded(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    writer = StateFlushingWriter()
    written = 0
    for index in range(2 * BLOCK_BYTES // 100):
        writer.write_record("events", {"i": index}, version=None, time_extracted=WHEN)
        written = len(capsysbinary.readouterr().out) or written
        assert len(writer._pending) < BLOCK_BYTES + 200
    assert written >= BLOCK_BYTES


class _TrickleFile:
    """A raw stdout (PYTHONUNBUFFERED) that takes at most 1000 bytes a call, like a busy pipe."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def write(self, data: memoryview) -> int:
        self.calls += 1
        self.data += data[:1000]
        return min(1000, len(data))

    def flush(self) -> None:
        pass


def test_a_raw_stdout_taking_part_of_a_block_still_gets_all_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = _TrickleFile()
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=raw))
    writer = StateFlushingWriter()
    for index in range(300):
        writer.write_record("events", {"i": index}, version=None, time_extracted=WHEN)
    writer.write_message(StateMessage(value={"done": True}))
    lines = bytes(raw.data).splitlines()
    assert len(lines) == 301
    assert lines[299].startswith(b'{"type":"RECORD","stream":"events","record":{"i":299}')
    assert raw.calls > 1


def test_every_record_of_a_sync_takes_the_writers_fast_path(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    """If the SDK stops calling `Stream._write_record_message`, records would still arrive, but
    through the slow per-record pipeline; this test fails instead of the tap silently slowing."""
    fast: list[str] = []
    slow: list[str] = []
    write_record = StateFlushingWriter.write_record
    write_message = StateFlushingWriter.write_message

    def counting_write_record(self: StateFlushingWriter, stream: str, *a: Any, **k: Any) -> None:
        fast.append(stream)
        write_record(self, stream, *a, **k)

    def counting_write_message(self: StateFlushingWriter, message: Message) -> None:
        if isinstance(message, RecordMessage):
            slow.append(message.stream)
        write_message(self, message)

    monkeypatch.setattr(StateFlushingWriter, "write_record", counting_write_record)
    monkeypatch.setattr(StateFlushingWriter, "write_message", counting_write_message)
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        config = box.tap_config(vendors=("acoustic",))
        TapEmailTracking(config=config).sync_all()
        truth = sum(len(rows) for rows in box.acoustic_truth_by_file().values())
    out = capsysbinary.readouterr().out
    records = out.count(b'{"type":"RECORD"')
    assert records == truth > 0
    assert slow == []
    assert len(fast) == records


def test_a_spooled_record_is_written_with_the_bytes_of_the_record_itself(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    """Spools hand records back undecoded (`msgspec.Raw`); the RECORD must not differ by a byte."""
    spool = SpoolWriter(tmp_path, "unit", {"events"})
    spool.write("events", [RECORD, {"f": 1e16, "g": 0.1, "list": [True, None]}])
    spool.close()
    writer = StateFlushingWriter()
    for record in [RECORD, {"f": 1e16, "g": 0.1, "list": [True, None]}]:
        writer.write_record("events", record, version=None, time_extracted=WHEN)
    spooled = list(read_spool(spool.paths["events"]))
    assert all(isinstance(record, msgspec.Raw) for record in spooled)
    for record in spooled:
        writer.write_record("events", record, version=None, time_extracted=WHEN)
    writer.flush_pending()
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[:2] == lines[2:]


def test_time_extracted_is_utc_and_follows_the_clock(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    """The clock is read at most every EXTRACTED_AT_EVERY seconds, but it is read: a record
    written after a pause carries the later time."""
    ticks = iter(range(10**9))
    monkeypatch.setattr(streams_module, "_monotonic", lambda: float(next(ticks)) / 100)
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        TapEmailTracking(config=box.tap_config(vendors=("acoustic",))).sync_all()
    lines = capsysbinary.readouterr().out.splitlines()
    stamps = [
        msgspec.json.decode(line)["time_extracted"]
        for line in lines
        if line.startswith(b'{"type":"RECORD"')
    ]
    assert len(stamps) > 10
    times = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert all(t.utcoffset() == timezone.utc.utcoffset(None) for t in times)
    assert times == sorted(times)
    # 10 ms a record on the fake monotonic clock: the wall clock is read every 5 records (two
    # readings may fall in one microsecond), never once for all.
    runs = [len(list(group)) for _, group in itertools.groupby(stamps)]
    assert max(runs) <= 10
    assert len(runs) > len(stamps) // 10
