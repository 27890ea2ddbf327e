"""Expansion limits in the shared homes: containers, XML and delimited text stay bounded.

Also: undecodable bytes are reported at their true line and skip mode drops exactly that row,
NUL characters are removed and counted, and unexpected exceptions name the file.
"""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tap_emailtracking import summary
from tap_emailtracking.errors import CorruptFileError, UnexpectedError
from tap_emailtracking.formats.containers import (
    TooLargeToReadError,
    open_container,
    unexpected_errors,
)
from tap_emailtracking.formats.delimited import DelimitedReader
from tap_emailtracking.formats.xml import iter_xml_items
from tap_emailtracking.limits import MIB, Limits

WHERE = {"vendor": "V", "stream": "s", "subject": "f.gz"}


@pytest.fixture(autouse=True)
def clean_summary() -> Iterator[None]:
    summary.reset()
    yield
    summary.reset()


def read_all(path: Path, limits: Limits, **kwargs: str) -> list[bytes]:
    with open_container(path, limits=limits, **WHERE, **kwargs) as container:  # type: ignore[arg-type]
        out = []
        for name in container.members:
            with container.open(name) as member:
                out.append(member.read())
        return out


# -- containers ---------------------------------------------------------------------------------


def test_a_gzip_over_the_member_size_is_refused_while_streaming(tmp_path: Path) -> None:
    path = tmp_path / "bomb.csv"  # the name lies: the magic bytes say gzip
    path.write_bytes(gzip.compress(b"a,b\r\n" * 400_000))  # 2 MB expanded
    with pytest.raises(CorruptFileError) as caught:
        read_all(path, Limits(max_member_bytes=MIB))
    message = str(caught.value)
    assert message.startswith("V / s (f.gz): bomb.csv expands to more than 1,048,576 bytes")
    assert "over the limit max_member_bytes=1048576" in message
    assert "raise max_member_bytes in the config" in message


def test_a_gzip_over_the_ratio_is_refused_and_small_files_are_spared(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(bytes(40 * MIB)))  # ~1000:1
    with pytest.raises(CorruptFileError, match=r"over the limit max_expansion_ratio=500\.0"):
        read_all(bomb, Limits())
    small = tmp_path / "small.gz"
    small.write_bytes(gzip.compress(bytes(MIB // 2)))  # the same ratio, but under the floor
    assert read_all(small, Limits()) == [bytes(MIB // 2)]


def test_a_zip_member_whose_stated_size_is_over_a_limit_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("t.xml", b"<x/>" * MIB)
    with pytest.raises(CorruptFileError, match=r"t\.xml expands to more than 1,000,000 bytes"):
        open_container(path, limits=Limits(max_member_bytes=1_000_000), **WHERE).__enter__()  # type: ignore[arg-type]


def test_a_zip_that_understates_a_member_size_is_damaged_not_read_past_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("t.xml", b"<x/>" * 100_000)
    data = bytearray(path.read_bytes())
    directory = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, directory + 24, 1000)  # the uncompressed size it states
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"liar\.zip is damaged"):
        read_all(path, Limits())


def test_a_truncated_gzip_is_damaged_before_any_byte_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    whole = gzip.compress(b"id,name\r\n" + b"1,x\r\n" * 50_000)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.csv\.gz is damaged") as caught:
        open_container(path, limits=Limits(), **WHERE).__enter__()  # type: ignore[arg-type]
    assert "re-run the sync" in str(caught.value)


def test_plain_files_and_the_containers_a_vendor_accepts(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_bytes(b"id\r\n1\r\n")
    with open_container(path, limits=Limits(), **WHERE) as container:  # type: ignore[arg-type]
        assert (container.kind, container.members) == ("plain", ["plain.csv"])
        with container.open("plain.csv") as member:
            assert member.read() == b"id\r\n1\r\n"
        assert container.position() == container.size
    with pytest.raises(CorruptFileError, match=r"is damaged \(not a ZIP file\)"):
        read_all(path, Limits(), kinds=("zip",))  # type: ignore[arg-type]


def lying_zip(path: Path, method: int, expanded: bytes, *, flag: int = 0) -> Path:
    """A ZIP whose one member uses `method`, with `flag` set and its size stated as 50 bytes."""
    real = method if method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA) else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", real) as archive:
        archive.writestr("t.xml", expanded)
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    for at, flags, kind, size in ((local, 6, 8, 22), (central, 8, 10, 24)):
        (old_flags,) = struct.unpack_from("<H", data, at + flags)
        struct.pack_into("<H", data, at + flags, old_flags | flag)
        struct.pack_into("<H", data, at + kind, method)
        struct.pack_into("<I", data, at + size, 50)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("method", "flag", "refusal"),
    [
        (zipfile.ZIP_BZIP2, 0, "member t.xml uses compression method 12 (bzip2)"),
        (zipfile.ZIP_LZMA, 0, "member t.xml uses compression method 14 (LZMA)"),
        (9, 0, "member t.xml uses compression method 9 (Deflate64)"),
        (99, 0, "member t.xml uses compression method 99 (AES (WinZip))"),
        (7, 0, "member t.xml uses compression method 7 (unknown)"),
        (zipfile.ZIP_DEFLATED, 1, "member t.xml is encrypted"),
        (zipfile.ZIP_STORED, 1, "member t.xml is encrypted"),
    ],
)
def test_a_zip_member_not_stored_or_deflated_or_encrypted_is_refused_before_reading(
    tmp_path: Path, method: int, flag: int, refusal: str
) -> None:
    """An 8 MiB bzip2/LZMA member that states 50 bytes: zipfile would expand it in one call."""
    path = lying_zip(tmp_path / "r.zip", method, b" " * (8 * MIB), flag=flag)
    assert path.stat().st_size < 300_000
    with pytest.raises(CorruptFileError) as caught:
        open_container(path, limits=Limits(), **WHERE).__enter__()  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"V / s (f.gz): the downloaded file r.zip is damaged ({refusal}")
    assert "re-run the sync: the export is requested again" in message


def test_unexpected_exceptions_name_the_file_and_keep_their_cause() -> None:
    original = ZeroDivisionError("division by zero")
    with pytest.raises(UnexpectedError) as caught, unexpected_errors(**WHERE):
        raise original
    assert str(caught.value).startswith(
        "V / s (f.gz): unexpected ZeroDivisionError while reading the file: division by zero"
    )
    assert caught.value.__cause__ is original
    with pytest.raises(CorruptFileError), unexpected_errors(**WHERE):
        raise CorruptFileError("x", vendor="V", action="y")  # the tap's own errors pass through


def test_a_memory_error_is_an_unusable_result_so_its_job_is_forgotten() -> None:
    original = MemoryError()
    with pytest.raises(TooLargeToReadError) as caught, unexpected_errors(**WHERE):
        raise original
    assert isinstance(caught.value, CorruptFileError)  # an UnusableResultError: job forgotten
    message = str(caught.value)
    assert message.startswith("V / s (f.gz): the file needs more memory than this process")
    assert "the export is requested again on the next run" in message
    assert "lower the max_*_bytes limits" in message
    assert caught.value.__cause__ is original


# -- XML ----------------------------------------------------------------------------------------


def xml_items(document: bytes, limits: Limits) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []
    for chunk in iter_xml_items(
        io.BytesIO(document),
        capture=frozenset({"item"}),
        leaves=frozenset({"id"}),
        ends=frozenset(),
        vendor="V",
        stream_name="s",
        subject="f.xml",
        limits=limits,
    ):
        out.extend(chunk)
    return out


@pytest.mark.parametrize(
    "wrap",
    [
        lambda text: b"<r><id>" + text + b"</id></r>",  # a tracked leaf
        lambda text: b"<r><item><x>" + text + b"</x></item></r>",  # inside a captured subtree
        lambda text: b"<r><other>" + text + b"</other></r>",  # an element nobody wants
        lambda text: b"<r><!--" + text + b"--></r>",  # a comment
        lambda text: b"<r><x a='" + text + b"'/></r>",  # a tag
        lambda text: b"<r><item>" + b"<o/>" * (len(text) // 4) + b"</item></r>",  # a subtree
    ],
)
def test_a_text_node_or_tag_over_the_field_limit_is_refused(wrap: object) -> None:
    limits = Limits(max_field_bytes=300_000)
    make = wrap  # type: ignore[assignment]
    assert xml_items(make(b"y" * 200_000), limits) is not None  # type: ignore[operator]
    with pytest.raises(CorruptFileError) as caught:
        xml_items(make(b"y" * 3_000_000), limits)  # type: ignore[operator]
    message = str(caught.value)
    assert "a text node, tag or record element near line 1 is longer than 300,000 bytes" in message
    assert "over the limit max_field_bytes=300000" in message


@pytest.mark.parametrize(
    "wrap",
    [
        lambda levels: b"<r>" + b"<a>" * levels + b"</a>" * levels + b"</r>",  # outside
        lambda levels: b"<r><item>" + b"<a>" * levels + b"</a>" * levels + b"</item></r>",
        lambda levels: b"<r>" + b"<a>" * levels + b"<item/>" + b"</a>" * levels + b"</r>",
    ],
)
def test_nesting_deeper_than_the_limit_is_refused(wrap: object) -> None:
    make = wrap  # type: ignore[assignment]
    limits = Limits(max_xml_depth=50)
    assert xml_items(make(45), limits) is not None  # type: ignore[operator]
    with pytest.raises(CorruptFileError) as caught:
        xml_items(make(200_000), limits)  # type: ignore[operator]
    message = str(caught.value)
    assert message.startswith("V / s (f.xml): elements near line 1 are nested more than 50 deep")
    assert "over the limit max_xml_depth=50" in message


class Nesting(io.RawIOBase):
    """`<r>` and then `<a>` for ever (three bytes at a time): an endless stream, never held."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer) - len(buffer) % 3
        buffer[:size] = b"<a>" * (size // 3)
        return size


def test_deep_nesting_stays_small_while_it_is_refused() -> None:
    """Unbounded, expat keeps ~130 bytes per open element (ten million: 1.3 GB); refused early."""
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError, match="max_xml_depth=100"):
            for _ in iter_xml_items(
                io.BufferedReader(Nesting()),
                capture=frozenset(),
                leaves=frozenset(),
                ends=frozenset(),
                vendor="V",
                stream_name="s",
                subject="f.xml",
            ):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB  # expat's stack for one 256 KiB chunk of <a>, however long the stream


@pytest.mark.parametrize("nul", [b"\x00", b"&#0;"])
def test_xml_with_a_nul_is_malformed(nul: bytes) -> None:
    with pytest.raises(CorruptFileError, match="malformed XML at line 1"):
        xml_items(b"<r><id>a" + nul + b"b</id></r>", Limits())


# -- delimited text -----------------------------------------------------------------------------


def delimited(data: bytes, **kwargs: object) -> DelimitedReader:
    return DelimitedReader(
        io.BytesIO(data),
        delimiter=",",
        vendor="V",
        stream_name="s",
        subject="f.csv",
        **kwargs,  # type: ignore[arg-type]
    )


def numbered(count: int) -> list[bytes]:
    return [b"id,name\r\n"] + [f"{n},name {n}\r\n".encode() for n in range(2, count + 2)]


def test_a_bad_byte_deep_in_a_file_is_reported_at_its_true_line() -> None:
    lines = numbered(6000)
    lines[5000] = b"5001,caf\xe9\r\n"  # physical line 5001
    with pytest.raises(CorruptFileError) as caught:
        list(delimited(b"".join(lines)).rows())
    assert str(caught.value).startswith(
        "V / s (f.csv): text that is not utf-8 (byte 0xE9 at column 9) at line 5001."
    )


def test_skip_mode_drops_exactly_the_row_with_a_bad_byte_and_counts_it() -> None:
    lines = numbered(6000)
    lines[5000] = b"5001,caf\xe9\r\n"
    lines[1] = b"2,bad \xff\r\n"  # in the first block too
    reader = delimited(b"".join(lines), on_bad_row="skip")
    ids = [fields[0] for _, fields in reader.rows()]
    assert len(ids) == 6000 - 2
    assert "5001" not in ids
    assert "2" not in ids
    assert reader.skipped_rows == 2
    assert summary.counts() == {("V", "malformed rows skipped"): 2}


def test_a_bad_byte_inside_a_quoted_multi_line_field_drops_only_that_row() -> None:
    data = b'id,note\r\n1,a\r\n2,"line one\r\nline tw\xf6\r\nthree"\r\n3,c\r\n'
    with pytest.raises(CorruptFileError, match=r"at column 8\) at line 4\."):
        list(delimited(data).rows())
    rows = list(delimited(data, on_bad_row="skip").rows())
    assert rows == [(2, ["1", "a"]), (6, ["3", "c"])]


def test_a_bad_byte_in_the_header_fails_even_in_skip_mode() -> None:
    with pytest.raises(CorruptFileError, match=r"at column 3\) at line 1\."):
        delimited(b"id\xe9,name\r\n1,x\r\n", on_bad_row="skip")


def test_a_line_over_the_limit_is_refused_before_it_is_read_whole() -> None:
    limits = Limits(max_line_bytes=1000)
    fits = b"id,name\r\n1," + b"x" * 998 + b"\n"  # 1000 bytes before its LF
    assert len(list(delimited(fits, limits=limits).rows())) == 1
    too_long = b"id,name\r\n1," + b"x" * 999 + b"\n2,y\n"
    for policy in ("fail", "skip"):
        with pytest.raises(CorruptFileError) as caught:
            list(delimited(too_long, limits=limits, on_bad_row=policy).rows())
        assert "line 2 is longer than 1,000 bytes" in str(caught.value)
        assert "over the limit max_line_bytes=1000" in str(caught.value)


def test_a_row_over_many_lines_is_refused_by_the_line_limit_even_in_skip_mode() -> None:
    """Short quoted fields, each holding a line break: every line and field is small."""
    limits = Limits(max_line_bytes=1000)
    fits = b"id,note\r\n1," + b'"a\r\n",' * 100 + b"x\r\n"  # 701 bytes over 101 lines
    with pytest.raises(CorruptFileError, match="a row with 102 fields"):  # shape, not size
        list(delimited(fits, limits=limits).rows())
    endless = b"id,note\r\n1,x\r\n2," + b'"a\r\n",' * 100_000 + b"x\r\n3,y\r\n"
    for policy in ("fail", "skip"):
        with pytest.raises(CorruptFileError) as caught:
            list(delimited(endless, limits=limits, on_bad_row=policy).rows())
        message = str(caught.value)
        assert "the row starting at line 3 is longer than 1,000 bytes" in message
        assert "over the limit max_line_bytes=1000" in message


def test_rows_over_lines_within_the_limit_read_across_blocks() -> None:
    limits = Limits(max_line_bytes=3000)
    rows = [b'%d,"%s"\r\n' % (n, b"line\r\n" * 300) for n in range(300)]  # ~2 KB each
    read = list(delimited(b"id,note\r\n" + b"".join(rows), limits=limits).rows())
    assert [fields[0] for _, fields in read] == [str(n) for n in range(300)]
    assert read[1] == (303, ["1", "line\r\n" * 300])


def test_a_field_over_the_limit_is_refused_even_in_skip_mode() -> None:
    limits = Limits(max_field_bytes=500)
    data = b'id,note\r\n1,"' + b"y\r\n" * 300 + b'"\r\n'  # one quoted field over many lines
    with pytest.raises(CorruptFileError, match="over the limit max_field_bytes=500") as caught:
        list(delimited(data, limits=limits, on_bad_row="skip").rows())
    assert "a field of the row at line 2 holds more than 500 characters" in str(caught.value)


def test_nul_characters_are_removed_and_counted() -> None:
    reader = delimited(b"id,na\x00me\r\n1,a\x00b\x00\r\n2,\x00\r\n")
    assert reader.header == ["id", "name"]
    assert list(reader.rows()) == [(2, ["1", "ab"]), (3, ["2", ""])]
    assert summary.counts() == {("V", "NUL characters removed"): 4}
