"""Delimited text: quoting, embedded delimiters and line breaks, bad rows, containers."""

from __future__ import annotations

import csv
import io

import pytest

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.formats.containers import sniff_container
from tap_emailtracking.formats.delimited import DELIMITERS, DelimitedReader

ROWS = [
    ["id", "name", "note"],
    ["1", "a,b|c\td", 'she said "hi"'],
    ["2", "line one\nline two", ""],
    ["3", "é 😀", "x"],
]


def encode(rows: list[list[str]], delimiter: str) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def reader(data: bytes, delimiter: str = ",", **kwargs: str) -> DelimitedReader:
    return DelimitedReader(
        io.BytesIO(data),
        delimiter=delimiter,
        vendor="V",
        stream_name="s",
        subject="f.csv",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("fmt", ["CSV", "PSV", "TSV"])
def test_quoted_fields_round_trip_in_every_format(fmt: str) -> None:
    delimited = reader(encode(ROWS, DELIMITERS[fmt]), DELIMITERS[fmt])
    assert delimited.header == ROWS[0]
    rows = list(delimited.rows())
    assert [fields for _, fields in rows] == ROWS[1:]
    assert [line for line, _ in rows] == [2, 3, 5]  # the row with a line break spans 3-4


def test_a_row_with_the_wrong_field_count_names_its_line() -> None:
    data = encode(ROWS[:2], ",") + b"9,too,many,fields\r\n" + encode(ROWS[3:], ",")
    with pytest.raises(CorruptFileError, match="4 fields where the header has 3 at line 3") as e:
        list(reader(data).rows())
    assert "V / s (f.csv)" in str(e.value)
    assert "on_bad_row" in str(e.value)


def test_skip_mode_counts_and_keeps_the_good_rows() -> None:
    data = encode(ROWS[:2], ",") + b"9,too,many,fields\r\n" + encode(ROWS[3:], ",")
    delimited = reader(data, on_bad_row="skip")
    assert [fields[0] for _, fields in delimited.rows()] == ["1", "3"]
    assert delimited.skipped_rows == 1


def test_text_that_is_not_utf8_is_an_error() -> None:
    with pytest.raises(CorruptFileError, match="not utf-8"):
        list(reader(b"id,name\r\n1,\xff\xfe\r\n").rows())


def test_a_bom_and_blank_lines_are_tolerated_and_an_empty_file_has_no_rows() -> None:
    delimited = reader(b"\xef\xbb\xbfid,name\r\n\r\n1,x\r\n")
    assert delimited.header == ["id", "name"]
    assert [fields for _, fields in delimited.rows()] == [["1", "x"]]
    assert list(reader(b"").rows()) == []


def test_containers_are_recognised_by_their_first_bytes() -> None:
    assert sniff_container(b"PK\x03\x04rest") == "zip"
    assert sniff_container(b"\x1f\x8b\x08\x00") == "gzip"
    assert sniff_container(b"id,na") == "plain"
