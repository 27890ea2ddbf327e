"""What the tap must emit for the Mailkit sandbox's ground truth, written independently of the
tap's row mapping (docs/mailkit.md, "What the tap emits", is the specification both follow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

KEYS = {
    "mailkit_bounces": "id_undelivered_log",
    "mailkit_messages": "id_send_message",
    "mailkit_responses": "id_log",
    "mailkit_campaigns": "id_message",
    "mailkit_sends": "id_send",
}
TIMES = {"email_date", "message_date", "date_sent", "date", "date2", "send_date", "last_sent"}
INTEGERS = {"repeat_count", "send_count", "delivered_count", "read_count", "read_count_u"}
INTEGERS |= {"click_count", "click_count_u", "conversion_count", "conversion_count_u"}
INTEGERS |= {"forward_count", "print_count", "unsubscribe", "spam_report"}
NUMBERS = {"click_rate", "click_rate2", "rev"}
KEPT = {"user_list"}


def local_time(text: str, zone: ZoneInfo) -> str | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text if len(text) > 10 else text + " 00:00:00")
    return moment.replace(tzinfo=zone).isoformat()


def expected_record(raw: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """One raw row as the tap emits it (columns the row lacks are not checked here)."""
    out: dict[str, Any] = {}
    customs: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.lower().replace("id_send_messge", "id_send_message")
        if name.startswith("custom_") and name[7:].isdigit():
            customs[name] = value or None
        elif name in KEPT:
            out[name] = None if value in ("", None) else [str(v) for v in value]
        elif name.startswith("id_") or name in INTEGERS:
            out[name] = None if value in ("", None) else int(value)
        elif name in NUMBERS:
            out[name] = None if value in ("", None) else float(value)
        elif name in TIMES:
            out[name] = local_time(str(value or ""), zone)
        else:
            out[name] = None if value in ("", None) else str(value)
    if customs:
        out["custom_fields"] = customs
    return out


def expected(truth: dict[str, list[dict[str, Any]]], timezone: str) -> dict[str, dict[int, Any]]:
    """Records by primary key per stream."""
    zone = ZoneInfo(timezone)
    out: dict[str, dict[int, Any]] = {}
    for stream, rows in truth.items():
        records = [expected_record(row, zone) for row in rows]
        out[stream] = {record[KEYS[stream]]: record for record in records}
    return out


def emitted(records: list[dict[str, Any]], stream: str) -> dict[int, dict[str, Any]]:
    """Emitted records by key, only the columns that carry a value or came from the row; a
    key emitted twice is an error (the walk never emits a row twice)."""
    out: dict[int, dict[str, Any]] = {}
    for record in records:
        key = record[KEYS[stream]]
        assert key not in out, f"{stream}: {key} emitted twice"
        assert record.get("extra") is None, (stream, record["extra"])
        out[key] = record
    return out


def assert_matches(stream: str, got: dict[int, dict[str, Any]], want: dict[int, Any]) -> None:
    """Same keys; every field of the raw row emitted as the spec says; other columns null."""
    assert sorted(got) == sorted(want), stream
    for key, record in got.items():
        expected_fields = want[key]
        for column, value in expected_fields.items():
            assert record[column] == value, (stream, key, column, record[column], value)
        for column, value in record.items():
            if column not in expected_fields and column != "extra":
                assert value is None, (stream, key, column, value)
