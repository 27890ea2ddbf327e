"""Property tests: whatever bytes a vendor sends, every parser ends in records or in the documented
error (`CorruptFileError` naming the file, and the line where the format has lines), quickly and
in bounded memory; never a hang, never another exception type.

Inputs are small and the example counts modest, so the whole module runs in seconds. Each parser
gets arbitrary bytes and valid documents with bytes flipped, inserted or cut off (the damage that
real transfers and broken exporters cause).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.formats import delimited as delimited_module
from tap_emailtracking.formats.containers import open_container
from tap_emailtracking.formats.delimited import DelimitedReader
from tap_emailtracking.formats.xml import iter_xml_items
from tap_emailtracking.limits import Limits
from tap_emailtracking.timestamps import LocalTimeFormatter, zone
from tap_emailtracking.vendors.acoustic.rows import BEX_COLUMNS, RowMapper, map_rows
from tap_emailtracking.vendors.exacttarget.parser import KINDS, ExportParser

SEED_XML = (Path(__file__).parent / "data" / "exacttarget_seed_example.xml").read_bytes()
SMALL = Limits(
    max_member_bytes=256_000, max_expansion_ratio=50, max_field_bytes=4_000, max_line_bytes=8_000
)
FUZZ = settings(
    max_examples=60,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def bex_document() -> bytes:
    header = ["Email", "code", "timestamp", "eventId", "messageName", "Region"]
    rows = [
        ["a@example.com", "emailOpen", "2024-01-01T00:00:01Z", "e1", 'say "hi", ok', "North"],
        ["b@example.com", "emailClick", "2024-01-01T00:10:00Z", "", "line\nbreak", "S|W"],
        ["c@exämple.com", "emailSend", "01/01/2024 10:00:00", "e3", "☕", ""],
    ]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows([header, *rows])
    return out.getvalue().encode()


BEX = bex_document()


@st.composite
def damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few bytes flipped, inserted or removed, or cut short."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if action == "flip" and data:
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        elif data:
            del data[at]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def inputs(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=600), damaged(valid))


def assert_documented(error: CorruptFileError, subject: str, *, position: bool) -> None:
    message = str(error)
    assert f"({subject})" in message, message
    if position:
        assert "line" in message, message


# -- containers ---------------------------------------------------------------------------------


def zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.csv", data)
    return out.getvalue()


def read_container(path: Path) -> list[bytes]:
    with open_container(path, limits=SMALL, vendor="V", stream="s", subject="r.bin") as box:
        out = []
        for name in box.members:
            with box.open(name) as member:
                out.append(member.read())
        return out


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=400),
        damaged(zipped(BEX * 20)),
        damaged(gzip.compress(BEX * 20)),
        damaged(zipped(bytes(300_000))),  # a small bomb
        damaged(gzip.compress(bytes(300_000))),
    )
)
def test_any_container_opens_or_is_reported_damaged(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "r.bin"
    path.write_bytes(data)
    try:
        members = read_container(path)
    except CorruptFileError as error:
        assert_documented(error, "r.bin", position=False)
    else:
        assert all(len(m) <= SMALL.max_member_bytes for m in members)


# -- XML ----------------------------------------------------------------------------------------


def xml_items(data: bytes) -> Iterator[Any]:
    for chunk in iter_xml_items(
        io.BytesIO(data),
        capture=frozenset({"subscriber"}),
        leaves=frozenset({"jobID"}),
        ends=frozenset({"job"}),
        vendor="V",
        stream_name="s",
        subject="f.xml",
        limits=SMALL,
    ):
        yield from chunk


@FUZZ
@given(data=inputs(SEED_XML))
def test_any_xml_parses_or_is_reported_at_its_line(data: bytes) -> None:
    try:
        list(xml_items(data))
    except CorruptFileError as error:
        assert_documented(error, "f.xml", position="DTD" not in str(error))


@FUZZ
@given(data=inputs(SEED_XML))
def test_any_exacttarget_export_gives_records_or_the_documented_error(data: bytes) -> None:
    parser = ExportParser(
        LocalTimeFormatter(zone("America/Chicago")), stream="s", subject="f.xml", limits=SMALL
    )
    try:
        for batch in parser.parse(io.BytesIO(data), set(KINDS)):
            for kind, record in batch:
                assert kind in KINDS
                assert isinstance(record, dict)
    except CorruptFileError as error:
        assert_documented(error, "f.xml", position=False)


# -- delimited text -----------------------------------------------------------------------------


def reader(data: bytes, policy: str) -> DelimitedReader:
    return DelimitedReader(
        io.BytesIO(data),
        delimiter=",",
        vendor="V",
        stream_name="s",
        subject="f.csv",
        on_bad_row=policy,  # type: ignore[arg-type]
        limits=SMALL,
    )


@FUZZ
@given(data=inputs(BEX), policy=st.sampled_from(["fail", "skip"]))
def test_any_delimited_text_gives_rows_or_an_error_at_its_line(data: bytes, policy: str) -> None:
    try:
        delimited = reader(data, policy)
        for line, fields in delimited.rows():
            assert line >= 2
            assert len(fields) == len(delimited.header)
            assert not any("\x00" in field for field in fields)
    except CorruptFileError as error:
        assert_documented(error, "f.csv", position=True)


FIELD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6
)


@FUZZ
@given(
    rows=st.lists(st.lists(FIELD_TEXT, min_size=2, max_size=2), min_size=1, max_size=10),
    ending=st.sampled_from(["\r\n", "\n", "\r"]),
    block=st.integers(1, 24),
)
def test_lines_split_across_blocks_read_as_a_text_file_would(
    rows: list[list[str]], ending: str, block: int
) -> None:
    """Whatever the block size, rows and their line numbers are those of `csv` on a text file."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=ending).writerows([["a", "b"], *rows])
    data = out.getvalue().encode()
    text = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))
    next(text)
    expected = []
    start = text.line_num + 1
    for row in text:
        expected.append((start, row))
        start = text.line_num + 1
    with mock.patch.object(delimited_module, "_BLOCK", block):
        got = list(reader(data, "skip").rows())
    # (A line end the writer left unquoted splits a row: both readers see the same pieces.)
    assert got == [item for item in expected if len(item[1]) == 2]


def bex_records(data: bytes, policy: str) -> Callable[[], list[dict[str, Any]]]:
    def run() -> list[dict[str, Any]]:
        delimited = reader(data, policy)
        if not delimited.header:
            return []
        mapper = RowMapper(
            delimited.header,
            kind="bex",
            custom_columns=("Region",),
            formatter=LocalTimeFormatter(zone("America/New_York")),
            file_name="f.csv",
            stream="s",
        )
        return list(map_rows(delimited.rows(), mapper, wanted=lambda _: True))

    return run


@FUZZ
@given(data=inputs(BEX), policy=st.sampled_from(["fail", "skip"]))
def test_any_bex_file_gives_records_or_the_documented_error(data: bytes, policy: str) -> None:
    try:
        records = bex_records(data, policy)()
    except CorruptFileError as error:
        assert_documented(error, "f.csv", position="header" not in str(error))
    else:
        for record in records:
            assert record["event_id"]
            assert record["occurred_at"]
            assert set(BEX_COLUMNS.values()) <= record.keys()


# -- structure-aware: ZIP methods, deep nesting, rows over many lines, memory --------------------

SMALL_DEPTH = Limits(
    max_member_bytes=256_000,
    max_expansion_ratio=50,
    max_field_bytes=4_000,
    max_line_bytes=8_000,
    max_xml_depth=50,
)
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


@st.composite
def zip_members(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A ZIP of one member: any method zipfile writes, then maybe another method number, the
    encryption flag or a lying size written into both headers. Also says if it must be refused."""
    method = draw(
        st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, 14])
    )
    body = draw(st.sampled_from([BEX * 5, b" " * draw(st.integers(0, 400_000))]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        archive.writestr("export.csv", body)
    data = bytearray(out.getvalue())
    stated_method = draw(st.one_of(st.just(method), st.integers(0, 255)))
    encrypted = draw(st.booleans())
    stated_size = draw(st.one_of(st.none(), st.integers(0, 1 << 32 - 1)))
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    for at, flags, kind, size in ((local, 6, 8, 22), (central, 8, 10, 24)):
        (old,) = struct.unpack_from("<H", data, at + flags)
        struct.pack_into("<H", data, at + flags, old | int(encrypted))
        struct.pack_into("<H", data, at + kind, stated_method)
        if stated_size is not None:
            struct.pack_into("<I", data, at + size, stated_size)
    return bytes(data), encrypted or stated_method not in READABLE_METHODS


@FUZZ
@given(member=zip_members())
def test_a_zip_member_of_any_method_opens_or_is_refused_before_expanding(
    tmp_path_factory: Any, member: tuple[bytes, bool]
) -> None:
    data, refused = member
    path = tmp_path_factory.mktemp("fuzz") / "r.bin"
    path.write_bytes(data)
    try:
        members = read_container(path)
    except CorruptFileError as error:
        assert_documented(error, "r.bin", position=False)
    else:
        assert not refused, "an encrypted member or one of another method was read"
        assert all(len(m) <= SMALL.max_member_bytes for m in members)


@st.composite
def deep_xml(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Nesting of any depth, outside or inside a captured subtree, closed or not; says if the
    open depth at the end is over the limit (which must be refused)."""
    levels = draw(st.integers(0, 3000))
    inside = draw(st.booleans())
    closed = draw(st.booleans())
    head = b"<r><subscriber>" if inside else b"<r>"
    tail = (b"</a>" * levels + (b"</subscriber></r>" if inside else b"</r>")) if closed else b""
    depth = 1 + int(inside) + levels
    return head + b"<a>" * levels + tail, not closed and depth > 50


def deep_items(data: bytes) -> list[Any]:
    out = []
    for chunk in iter_xml_items(
        io.BytesIO(data),
        capture=frozenset({"subscriber"}),
        leaves=frozenset(),
        ends=frozenset(),
        vendor="V",
        stream_name="s",
        subject="f.xml",
        limits=SMALL_DEPTH,
    ):
        out.extend(chunk)
    return out


@FUZZ
@given(document=deep_xml())
def test_any_nesting_parses_or_is_refused_with_its_setting(document: tuple[bytes, bool]) -> None:
    data, too_deep = document
    refusal = ""
    try:
        deep_items(data)
    except CorruptFileError as error:
        assert_documented(error, "f.xml", position=True)
        refusal = str(error)
    else:
        assert data.endswith(b"</r>")  # an unclosed document never parses
    if too_deep:  # by depth, or by the size of the captured subtree that holds it
        assert "over the limit max_xml_depth=50" in refusal or "max_field_bytes" in refusal


@st.composite
def rows_over_lines(draw: st.DrawFn) -> list[bytes]:
    """Rows of many short quoted fields that each hold a line break: no line or field is long."""
    rows = []
    for n in range(draw(st.integers(1, 4))):
        ending = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
        fields = draw(st.sampled_from([1, 2000])) * draw(st.integers(0, 2))
        rows.append(b"%d," % n + b'"a%s",' % ending * fields + b"x" + ending)
    return rows


@FUZZ
@given(
    rows=rows_over_lines(), block=st.integers(16, 4096), policy=st.sampled_from(["fail", "skip"])
)
def test_rows_over_many_lines_read_or_are_refused_by_the_line_limit(
    rows: list[bytes], block: int, policy: str
) -> None:
    """A row two blocks over `max_line_bytes` (checked between blocks) is refused, even skipped."""
    read = rows
    if policy == "fail":  # the first row of the wrong shape ends the read
        wrong = [at for at, row in enumerate(rows) if row.count(b",") != 1]
        read = rows[: wrong[0] + 1] if wrong else rows
    too_long = any(len(row) > SMALL.max_line_bytes + 2 * block for row in read)
    refusal = ""
    with mock.patch.object(delimited_module, "_BLOCK", block):
        try:
            list(reader(b"id,note\r\n" + b"".join(rows), policy).rows())
        except CorruptFileError as error:
            assert_documented(error, "f.csv", position=True)
            refusal = str(error)
    if too_long:
        assert "is longer than 8,000 bytes, over the limit max_line_bytes=8000" in refusal
    if all(len(row) <= SMALL.max_line_bytes for row in read):
        assert "max_line_bytes" not in refusal


HOSTILE_INPUTS: dict[str, Callable[[int], bytes]] = {
    "deep xml": lambda n: b"<r>" + b"<a>" * n,
    "long row": lambda n: b"id,note\r\n1," + b'"a\r\n",' * n + b"x\r\n",
    "many fields": lambda n: b"id,note\r\n" + b"1," * n,
}


def parse_hostile(kind: str, data: bytes) -> None:
    if kind == "deep xml":
        deep_items(data)
    else:
        for _ in reader(data, "fail").rows():
            pass


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(sorted(HOSTILE_INPUTS)), n=st.integers(10_000, 400_000))
def test_peak_memory_of_a_hostile_parse_stays_bounded_by_small_limits(kind: str, n: int) -> None:
    """Whatever its length, a hostile input costs a few chunks of memory, not its expansion."""
    data = HOSTILE_INPUTS[kind](n)  # up to 2.8 MB, allocated before measuring
    tracemalloc.start()
    try:
        with contextlib.suppress(CorruptFileError):
            parse_hostile(kind, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * (1 << 20), (kind, n, peak)  # expat's stack for one 256 KiB chunk at most
