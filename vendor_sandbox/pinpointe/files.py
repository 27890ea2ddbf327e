"""Pinpointe result files, written as a stream: one record is built, written and dropped at a time,
so a benchmark's million-row file costs no memory. JSON holders: ``array``, ``object``
(``{"count": "N", "<key>": [...]}``) or ``lines``; CSV (segments) with a header row, every
custom field its own column, no membership (CSV has no place for it [I])."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from vendor_sandbox.pinpointe.data import CUSTOM_FIELDS

__all__ = ["CSV_COLUMNS", "nested_activity", "write_csv", "write_json"]

CSV_COLUMNS = (
    "subscriberid",
    "emailaddress",
    "status",
    "format",
    "confirmed",
    "subscribedate",
    "confirmdate",
    "unsubscribedate",
    "bouncedate",
    "ipaddress",
)
_BUFFER = 1 << 20


def write_json(
    path: Path,
    records: Iterable[dict[str, Any]],
    *,
    holder: str,
    key: str = "subscribers",
    count: int | None = None,
    malformed: bool = False,
) -> int:
    """Write `records` to `path`; return how many were written whole.

    `count` is needed for the ``object`` holder (its ``count`` comes first). With `malformed`
    the file ends in the middle of the second record (fewer: in a made-up one after them).
    """
    if holder not in ("array", "object", "lines"):
        raise ValueError(f"unknown JSON holder {holder!r}")
    encode = msgspec.json.Encoder().encode
    written = 0
    with path.open("wb", buffering=_BUFFER) as out:
        if holder == "object":
            out.write(f'{{"count": "{count if count is not None else 0}", "{key}": ['.encode())
        elif holder == "array":
            out.write(b"[")
        for record in records:
            text = encode(record)
            lead = b"" if holder == "lines" else (b"\n" if written == 0 else b",\n")
            if malformed and written == 1:
                out.write(lead + text[: len(text) // 2])
                return written
            out.write(lead + text + (b"\n" if holder == "lines" else b""))
            written += 1
        if malformed:  # fewer than two records: an object cut short after them
            out.write(b"" if holder == "lines" else (b"\n" if written == 0 else b",\n"))
            out.write(b'{"subscriberid": "1')
            return written
        if holder == "object":
            out.write(b"\n]}\n")
        elif holder == "array":
            out.write(b"\n]\n")
    return written


def write_csv(path: Path, records: Iterable[dict[str, Any]], *, malformed: bool = False) -> int:
    """Subscriber records as CSV; with `malformed` the second row ends inside a quoted field."""
    names = [name for _, name in CUSTOM_FIELDS]
    written = 0
    with path.open("w", encoding="utf-8", newline="", buffering=_BUFFER) as out:
        writer = csv.writer(out)
        writer.writerow([*CSV_COLUMNS, *names])
        for record in records:
            values = {f["fieldname"]: f["fieldvalue"] for f in record.get("customfields", [])}
            row = [record[c] for c in CSV_COLUMNS] + [values.get(n, "") for n in names]
            if malformed and written == 1:
                line = io.StringIO()
                csv.writer(line).writerow(row)
                out.write(line.getvalue()[: len(line.getvalue()) // 2] + ',"unterminated')
                return written
            writer.writerow(row)
            written += 1
    return written


def nested_activity(events: Iterator[tuple[int, dict[str, str]]]) -> Iterator[dict[str, Any]]:
    """Group flat event records (with their recipient ordinal) into one record per contact."""
    current: dict[str, Any] | None = None
    last = -1
    for ordinal, flat in events:
        if current is None or ordinal != last:
            if current is not None:
                yield current
            current = {
                "subscriberid": flat["subscriberid"],
                "emailaddress": flat["emailaddress"],
                "opens": [],
                "clicks": [],
            }
            last = ordinal
        entry = {"time": flat["eventtime"]}
        if flat["eventtype"] == "click":
            entry["url"] = flat["linkurl"]
        entry["ipaddress"] = flat["ipaddress"]
        entry["useragent"] = flat["useragent"]
        current["opens" if flat["eventtype"] == "open" else "clicks"].append(entry)
    if current is not None:
        yield current
