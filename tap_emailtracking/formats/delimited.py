"""Delimited text (CSV, PSV, TSV) read as a stream, header-driven, strict about row shape.

Vendors quote fields holding the delimiter, a quote or a line break, and double embedded quotes;
`csv.reader` over a text wrapper with `newline=""` handles all of it in C, one row at a time. A row
whose field count differs from the header's, or that the csv module cannot read, is an error naming
the file and the line where the row starts; only a caller that opted in (`on_bad_row="skip"`) gets
such rows logged and counted instead.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import IO, Literal

from tap_emailtracking.errors import CorruptFileError

LOGGER = logging.getLogger("tap_emailtracking.formats")

DELIMITERS = {"CSV": ",", "PSV": "|", "TSV": "\t"}
BadRowPolicy = Literal["fail", "skip"]


def sniff_container(head: bytes) -> str:
    """ "zip", "gzip" or "plain", from a file's first bytes (extensions lie)."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "plain"


class DelimitedReader:
    """Rows of one delimited file as `(line number, fields)`, after its header."""

    def __init__(
        self,
        stream: IO[bytes],
        *,
        delimiter: str,
        vendor: str,
        stream_name: str | None,
        subject: str,
        on_bad_row: BadRowPolicy = "fail",
        encoding: str = "utf-8-sig",
    ) -> None:
        self._vendor = vendor
        self._stream_name = stream_name
        self._subject = subject
        self._on_bad_row = on_bad_row
        self._text = io.TextIOWrapper(stream, encoding=encoding, newline="", errors="strict")
        self._reader = csv.reader(
            self._text, delimiter=delimiter, quotechar='"', doublequote=True, strict=True
        )
        self.skipped_rows = 0
        self.header: list[str] = []
        first = self._next_row()
        if first is not None:
            self.header = [name.strip() for name in first[1]]

    def _bad(self, what: str, line: int) -> CorruptFileError:
        return CorruptFileError(
            f"{what} at line {line}",
            vendor=self._vendor,
            stream=self._stream_name,
            subject=self._subject,
            action="ask the vendor to regenerate the file, or set on_bad_row to skip to "
            "load the other rows (skipped rows are logged and counted); state was not advanced",
        )

    def _next_row(self) -> tuple[int, list[str]] | None:
        start = self._reader.line_num + 1
        try:
            return start, next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise self._bad(f"unreadable delimited text ({exc})", start) from None
        except UnicodeDecodeError as exc:
            raise self._bad(f"text that is not {exc.encoding}", start) from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Every data row whose field count matches the header; see the module docs for others."""
        width = len(self.header)
        while True:
            try:
                item = self._next_row()
            except CorruptFileError:
                if self._on_bad_row != "skip":
                    raise
                self.skipped_rows += 1
                LOGGER.warning(
                    "%s: skipped an unreadable row of %s (line %d)",
                    self._vendor,
                    self._subject,
                    self._reader.line_num,
                )
                continue
            if item is None:
                return
            line, fields = item
            if len(fields) == width:
                yield line, fields
                continue
            if not fields or fields == [""]:
                continue  # a blank line
            if self._on_bad_row == "skip":
                self.skipped_rows += 1
                LOGGER.warning(
                    "%s: skipped row at line %d of %s: %d fields, the header has %d",
                    self._vendor,
                    line,
                    self._subject,
                    len(fields),
                    width,
                )
                continue
            raise self._bad(f"a row with {len(fields)} fields where the header has {width}", line)
