"""A result file that is JSON or CSV, told apart by its first byte, read as a stream of rows.

Vendors that offer both formats (Pinpointe's segment exports, impact.com's `ResultFormat`) hand
back a file whose kind the tap checks rather than trusts: `[` or `{` is JSON (an array, a holder
object or JSON lines: `formats/json.py`), anything else CSV with a header row, each row a dict by
header name (`formats/delimited.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, cast

from tap_emailtracking.formats.delimited import DelimitedReader
from tap_emailtracking.formats.json import JsonRecords
from tap_emailtracking.limits import Limits


def json_or_csv_rows(
    handle: IO[bytes],
    *,
    limits: Limits,
    vendor: str,
    stream: str | None,
    subject: str,
    key: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of `handle` (a buffered stream); `key` names a JSON holder's rows. `meta` gets
    `format` ("json" or "csv") before the first row, and a holder's other members (paging links)
    once the rows are read."""
    meta = {} if meta is None else meta
    head = cast(Any, handle).peek(256).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{", b""):
        meta["format"] = "json"
        records = JsonRecords(
            handle, limits=limits, vendor=vendor, stream_name=stream, subject=subject, key=key
        )
        yield from records
        meta.update(records.meta)
        return
    meta["format"] = "csv"
    reader = DelimitedReader(
        handle, delimiter=",", vendor=vendor, stream_name=stream, subject=subject, limits=limits
    )
    header = reader.header
    for _, fields in reader.rows():
        yield dict(zip(header, fields, strict=False))
