"""Delimited text (CSV, PSV, TSV) read as a stream, header-driven, strict about row shape.

Vendors quote fields holding the delimiter, a quote or a line break, and double embedded quotes;
`csv.reader` handles all of it in C, one row at a time. It is fed one physical line at a time
(split at LF, CR or CRLF), read as bytes in blocks with a length cap (`max_line_bytes`, so an
endless line is refused before it is held whole) and decoded line by line, so a byte that is not
valid text is reported at its true line, and the row holding it (however many lines its quoted
fields span) is the only row lost. `max_line_bytes` bounds a logical row too: one row whose quoted
fields span a million short lines would otherwise be held whole as a list of fields (checked
between blocks, so a row is refused once it is two blocks, 128 KiB, past the limit).

A bad row (wrong field count, undecodable byte, unreadable quoting) is `MalformedRowError` naming
the file and the line where the row starts; only a caller that opted in (`on_bad_row="skip"`)
gets such rows logged and counted (`summary`, "malformed rows skipped") instead. The header is
never skipped: without it no row can be read. Crossing a limit (line or row length, field size)
is never skipped: the file is damaged.

NUL characters are removed from every line before parsing and counted ("NUL characters removed"):
they carry no meaning in an export, and PostgreSQL text columns reject them. The encoding must be
ASCII-compatible (UTF-8, latin-1, cp1252).
"""

from __future__ import annotations

import codecs
import csv
import logging
import operator
from collections.abc import Iterator
from typing import IO, Literal

from tap_emailtracking import summary
from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.limits import Limits

LOGGER = logging.getLogger("tap_emailtracking.formats")

DELIMITERS = {"CSV": ",", "PSV": "|", "TSV": "\t"}
BadRowPolicy = Literal["fail", "skip"]
_FIELD_TOO_LARGE = "field larger than field limit"
_BLOCK = 1 << 16


class MalformedRowError(CorruptFileError):
    """One row of a delimited file cannot be read; skippable with `on_bad_row: skip`."""


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
        limits: Limits | None = None,
        next_run: str | None = None,
    ) -> None:
        self._stream = stream
        self._vendor = vendor
        self._stream_name = stream_name
        self._subject = subject
        self._on_bad_row = on_bad_row
        self._limits = limits or Limits()
        self._next_run = next_run
        self._encoding = "utf-8" if encoding.lower() == "utf-8-sig" else encoding
        self._first_encoding = encoding
        self._bad_byte: tuple[int, int, int] | None = None  # first undecodable (line, column, byte)
        self.skipped_rows = 0
        self.nul_removed = 0
        self._row_start = 1  # the line where the row being read starts
        # Process-wide in the csv module; every reader sets the same configured value.
        csv.field_size_limit(self._limits.max_field_bytes)
        self._reader = csv.reader(
            self._lines(), delimiter=delimiter, quotechar='"', doublequote=True, strict=True
        )
        self.header: list[str] = []
        row = self._header()
        if row is not None:
            self.header = [name.strip() for name in row]

    # -- errors -------------------------------------------------------------------------------

    def _bad(self, what: str, line: int) -> MalformedRowError:
        return MalformedRowError(
            f"{what} at line {line}",
            vendor=self._vendor,
            stream=self._stream_name,
            subject=self._subject,
            action="ask the vendor to regenerate the file, or set on_bad_row to skip to "
            "load the other rows (skipped rows are logged and counted); state was not advanced",
        )

    def _exceeded(self, setting: str, what: str) -> CorruptFileError:
        return self._limits.exceeded(
            setting,
            what,
            vendor=self._vendor,
            stream=self._stream_name,
            subject=self._subject,
            next_run=self._next_run,
        )

    def _csv_error(self, exc: csv.Error, start: int) -> MalformedRowError:
        if _FIELD_TOO_LARGE in str(exc):
            raise self._exceeded(
                "max_field_bytes",
                f"a field of the row at line {start} holds more than "
                f"{self._limits.max_field_bytes:,} characters",
            ) from None
        return self._bad(f"unreadable delimited text ({exc})", start)

    def _decode_error(self, bad_byte: tuple[int, int, int]) -> MalformedRowError:
        line, column, byte = bad_byte
        self._bad_byte = None
        return self._bad(
            f"text that is not {self._encoding} (byte 0x{byte:02X} at column {column})", line
        )

    # -- reading ------------------------------------------------------------------------------

    def _lines(self) -> Iterator[str]:
        """Decoded physical lines, NULs removed, each at most `max_line_bytes` long.

        Bytes are read in blocks and split at CR, LF or CRLF (as a text file read with
        `newline=""` would be, and never inside a multi-byte character); a block that decodes
        whole has its lines decoded in C, and only a block holding a bad byte is decoded line
        by line, to find the line and keep the others.
        """
        read = self._stream.read
        cap = self._limits.max_line_bytes
        bom = codecs.BOM_UTF8 if self._first_encoding.lower() == "utf-8-sig" else b""
        decode = operator.methodcaller("decode", self._encoding)
        carry = b""
        fed = 0  # bytes of the lines handed out so far
        anchor_row, anchor = 0, 0  # the row being read, and `fed` when it was first seen here
        while True:
            if self._row_start != anchor_row:
                anchor_row, anchor = self._row_start, fed
            elif fed - anchor > cap:
                raise self._exceeded(
                    "max_line_bytes",
                    f"the row starting at line {anchor_row} is longer than {cap:,} bytes",
                )
            block = read(_BLOCK)
            data = carry + block
            if bom:
                data, bom = data.removeprefix(bom), b""
            lines = data.splitlines(keepends=True)
            carry = lines.pop() if block and lines and not lines[-1].endswith(b"\n") else b""
            fed += len(data) - len(carry)
            if len(carry) > cap or (lines and max(map(len, lines)) > cap):
                self._too_long(lines, carry, cap)
            if b"\x00" in data:
                self.nul_removed += data.count(b"\x00")
                lines = [line.replace(b"\x00", b"") for line in lines]
            try:
                b"".join(lines).decode(self._encoding)
            except UnicodeDecodeError:
                yield from self._decode_each(lines)
            else:
                yield from map(decode, lines)
            if not block:
                return

    def _too_long(self, lines: list[bytes], carry: bytes, cap: int) -> None:
        """Raise for the first line of this block longer than `cap` bytes before its line end."""
        for index, line in enumerate([*lines, carry]):
            if len(line.rstrip(b"\r\n")) > cap:
                raise self._exceeded(
                    "max_line_bytes",
                    f"line {self.line + index + 1} is longer than {cap:,} bytes",
                )

    def _decode_each(self, lines: list[bytes]) -> Iterator[str]:
        """Lines one by one; the first undecodable byte of a row is noted for `rows` to report."""
        for line in lines:
            try:
                yield line.decode(self._encoding)
            except UnicodeDecodeError as exc:
                if self._bad_byte is None:
                    self._bad_byte = (self.line + 1, exc.start + 1, line[exc.start])
                yield line.decode(self._encoding, "replace")

    @property
    def line(self) -> int:
        """Physical lines handed to the csv parser so far (the line the last row ended on)."""
        return self._reader.line_num

    def _header(self) -> list[str] | None:
        try:
            row = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise self._csv_error(exc, 1) from None
        if self._bad_byte is not None:  # never skipped: without the header no row can be read
            raise self._decode_error(self._bad_byte)
        return row

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Every data row whose field count matches the header; see the module docs for others."""
        try:
            yield from self._rows()
        finally:
            if self.nul_removed:
                summary.note(self._vendor, "NUL characters removed", self.nul_removed)
                LOGGER.warning(
                    "%s: %s: %d NUL character(s) removed",
                    self._vendor,
                    self._subject,
                    self.nul_removed,
                )
                self.nul_removed = 0

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.header)
        reader = self._reader
        skip = self._on_bad_row == "skip"
        while True:
            start = self._row_start = self.line + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                error = self._csv_error(exc, start)
            else:
                if self._bad_byte is not None:
                    error = self._decode_error(self._bad_byte)
                elif len(fields) == width:
                    yield start, fields
                    continue
                elif not fields or fields == [""]:
                    continue  # a blank line
                else:
                    error = self._bad(
                        f"a row with {len(fields)} fields where the header has {width}", start
                    )
            if not skip:
                raise error
            self.skipped_rows += 1
            summary.note(self._vendor, "malformed rows skipped")
            LOGGER.warning(
                "%s: %s: skipped a malformed row: %s", self._vendor, self._subject, error.what
            )
