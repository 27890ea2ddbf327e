"""What the tap must emit for the impact.com sandbox's ground truth, written independently of the
tap's row mapping (docs/impact.md and the README's impact.com streams section are the spec)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

NULLS = {"", "null", "n/a"}
KEEP_NA = {"customer_country", "customer_region"}
NUMBERS = {"cpc_bid", "payout"}
ALIASES = {"campaign_id": "program_id", "campaign_name": "program_name"}
CLICK_KEY = ("id", "program_id", "event_date")


def snake(name: str) -> str:
    """`ProgramId` -> `program_id`, `SubId1` -> `sub_id1`, `Os` -> `os`."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return ALIASES.get(text, text)


def value(column: str, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(raw, str) and (
        raw.strip().lower() in NULLS or (raw.strip() == "NA" and column not in KEEP_NA)
    ):
        return None
    if column in NUMBERS:
        return float(raw)
    if column == "unique_click":
        return raw if isinstance(raw, bool) else str(raw).lower() == "true"
    if column == "event_date":
        return datetime.fromisoformat(str(raw)).isoformat()
    return str(raw)


def click(raw: dict[str, Any]) -> dict[str, Any]:
    """One ClickExport row as the tap emits it (nested objects flattened)."""
    out: dict[str, Any] = {}
    for key, item in raw.items():
        if key in ("BrandRelated", "PartnerRelated"):
            parts = item if isinstance(item, list) else [item]
            for part in parts:
                for inner, inner_value in (part or {}).items():
                    out[snake(inner)] = value(snake(inner), inner_value)
        else:
            out[snake(key)] = value(snake(key), item)
    return out


def keyed_clicks(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for row in rows:
        record = click(row)
        key = tuple(record[k] for k in CLICK_KEY)
        assert key not in out, f"truth repeats the click key {key}"
        out[key] = record
    return out


def assert_clicks(emitted: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """Every truth click emitted once per key with the same values; other columns null."""
    want = keyed_clicks(truth)
    got: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in emitted:
        got[tuple(record[k] for k in CLICK_KEY)] = record
    assert sorted(got) == sorted(want)
    for key, record in got.items():
        for column, expected in want[key].items():
            assert record[column] == expected, (key, column, record[column], expected)
        assert record["extra"] is None, record["extra"]


def report_key(report: dict[str, Any], row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(str(row[k]) for k in report["key_fields"])


def assert_report(
    report: dict[str, Any], emitted: list[dict[str, Any]], truth: list[dict[str, Any]]
) -> None:
    """A report's rows by key: the key columns, and every column in `fields` as sent."""
    want = {report_key(report, row): row for row in truth}
    got = {tuple(r[k] for k in report["key_fields"]): r for r in emitted}
    assert sorted(got) == sorted(want)
    for key, record in got.items():
        assert record["fields"] == want[key], key
