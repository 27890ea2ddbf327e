"""`formats.records.json_or_csv_rows`: the file's first byte decides, rows come as dicts."""

from __future__ import annotations

import io

from tap_emailtracking.formats.records import json_or_csv_rows
from tap_emailtracking.limits import Limits


def rows(data: bytes, **options: object) -> tuple[list[dict[str, object]], dict[str, object]]:
    meta: dict[str, object] = {}
    handle = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    found = list(
        json_or_csv_rows(
            handle, limits=Limits(), vendor="V", stream="s", subject="f", meta=meta, **options
        )
    )
    return found, meta


def test_a_json_holder_gives_its_rows_and_its_paging_links() -> None:
    found, meta = rows(
        b'{"@page": "1", "@nextpageuri": "/next", "Clicks": [{"Id": "1"}, {"Id": "2"}]}',
        key="Clicks",
    )
    assert found == [{"Id": "1"}, {"Id": "2"}]
    assert meta["format"] == "json"
    assert meta["@nextpageuri"] == "/next"


def test_a_json_array_and_json_lines_after_a_bom() -> None:
    assert rows(b'\xef\xbb\xbf [{"a": 1}]')[0] == [{"a": 1}]
    assert rows(b'{"a": 1}\n{"a": 2}\n')[0] == [{"a": 1}, {"a": 2}]


def test_anything_else_is_csv_by_header_name() -> None:
    found, meta = rows(b'Id,Name\n1,"Ann, Jr."\n2,Bo\n')
    assert found == [{"Id": "1", "Name": "Ann, Jr."}, {"Id": "2", "Name": "Bo"}]
    assert meta["format"] == "csv"
