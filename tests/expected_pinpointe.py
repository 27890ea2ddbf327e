"""What the tap must emit for the Pinpointe sandbox's ground truth, written independently of the
tap's row mapping (docs/pinpointe.md, "What the tap emits", is the specification both follow)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

UTC = timezone.utc
# Columns whose values depend on the run (when the job was submitted, its id): checked apart.
RUN_COLUMNS = ("snapshot_at", "source_job_id")


def iso(value: str) -> str | None:
    """An epoch-seconds or `YYYY-MM-DD HH:MM:SS` (UTC) sandbox time as the tap emits it."""
    if value in ("", "0"):
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC).isoformat()
    return datetime.fromisoformat(value).replace(tzinfo=UTC).isoformat()


def number(value: str) -> int | None:
    return None if value == "" else int(value)


def text(value: str | None) -> str | None:
    return value if value else None


def listing(stream: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A list, segment, tag or send."""
    if stream == "pinpointe_lists":
        return {
            "list_id": raw["listid"],
            "name": raw["name"],
            "owner_id": raw["ownerid"],
            "owner_name": raw["ownername"],
            "created_at": iso(raw["createdate"]),
            "subscribe_count": number(raw["subscribecount"]),
            "unsubscribe_count": number(raw["unsubscribecount"]),
            "extra": None,
        }
    if stream == "pinpointe_segments":
        return {
            "segment_id": raw["segmentid"],
            "name": raw["segmentname"],
            "owner_id": raw["ownerid"],
            "created_at": iso(raw["createdate"]),
            "contacts": number(raw["contacts"]),
            "extra": None,
        }
    if stream == "pinpointe_tags":
        return {
            "tag_id": raw["tagid"],
            "name": raw["tagname"],
            "owner_id": raw["ownerid"],
            "created_at": iso(raw["createdate"]),
            "subscribe_count": number(raw["subscribecount"]),
            "extra": None,
        }
    return {
        "stat_id": raw["statid"],
        "newsletter_id": raw["newsletterid"],
        "name": raw["name"],
        "subject": raw["subject"],
        "owner_name": raw["ownername"],
        "last_updated_at": iso(raw["lastupdated"]),
        "started_at": iso(raw["starttime"]),
        "finished_at": iso(raw["finishtime"]),
        "recipients": number(raw["sentto"]),
        "extra": None,
    }


def subscriber(unit_column: str, unit_key: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A member of a list, segment or tag (without the run's columns)."""
    customs = {f["fieldname"]: f["fieldvalue"] or None for f in raw.get("customfields") or []}
    return {
        "subscriber_id": raw["subscriberid"],
        unit_column: raw[unit_key],
        "email": text(raw["emailaddress"]),
        "status": text(raw["status"]),
        "format": text(raw["format"]),
        "confirmed": {"1": True, "0": False}[raw["confirmed"]],
        "subscribed_at": iso(raw["subscribedate"]),
        "confirmed_at": iso(raw["confirmdate"]),
        "unsubscribed_at": iso(raw["unsubscribedate"]),
        "bounced_at": iso(raw["bouncedate"]),
        "ip_address": text(raw["ipaddress"]),
        "custom_fields": customs or None,
        "membership": raw.get("membership"),
        "extra": None,
    }


def activity(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat activity rows (file order), each with its ordinal among the send's events of the
    same contact, type and second."""
    seen: Counter[tuple[Any, ...]] = Counter()
    out = []
    for raw in rows:
        event_at = iso(raw["eventtime"])
        identity = (raw["statid"], raw["subscriberid"], raw["eventtype"], event_at)
        out.append(
            {
                "stat_id": raw["statid"],
                "subscriber_id": raw["subscriberid"],
                "event_type": raw["eventtype"],
                "event_at": event_at,
                "ordinal": seen[identity],
                "email": text(raw["emailaddress"]),
                "url": text(raw.get("linkurl")),
                "ip_address": text(raw.get("ipaddress")),
                "user_agent": text(raw.get("useragent")),
                "extra": None,
            }
        )
        seen[identity] += 1
    return out


UNITS = {
    "pinpointe_list_subscribers": ("list_id", "listid"),
    "pinpointe_segment_subscribers": ("segment_id", "segmentid"),
    "pinpointe_tag_subscribers": ("tag_id", "tagid"),
}
KEYS = {
    "pinpointe_lists": ("list_id",),
    "pinpointe_segments": ("segment_id",),
    "pinpointe_tags": ("tag_id",),
    "pinpointe_newsletter_sends": ("stat_id",),
    "pinpointe_list_subscribers": ("subscriber_id", "list_id"),
    "pinpointe_segment_subscribers": ("subscriber_id", "segment_id"),
    "pinpointe_tag_subscribers": ("subscriber_id", "tag_id"),
    "pinpointe_newsletter_activity": (
        "stat_id",
        "subscriber_id",
        "event_type",
        "event_at",
        "ordinal",
    ),
}


def expected(truth: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every record of every Pinpointe stream, from the sandbox's raw truth."""
    out: dict[str, list[dict[str, Any]]] = {}
    for stream, rows in truth.items():
        if stream in UNITS:
            column, key = UNITS[stream]
            out[stream] = [subscriber(column, key, raw) for raw in rows]
        elif stream == "pinpointe_newsletter_activity":
            out[stream] = activity(rows)
        else:
            out[stream] = [listing(stream, raw) for raw in rows]
    return out


def keyed(stream: str, records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Records by primary key, the run's columns left out (a duplicate key is an error)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        key = tuple(record[k] for k in KEYS[stream])
        assert key not in out, f"{stream}: duplicate key {key}"
        out[key] = {k: v for k, v in record.items() if k not in RUN_COLUMNS}
    return out
