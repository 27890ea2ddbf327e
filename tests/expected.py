"""What the tap must emit for the sandbox's ground truth, written independently of the parser.

The sandbox describes its data in the vendor's raw vocabulary; this module maps it to the tap's
records (stream name -> primary key -> record) so flow tests can compare record for record.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "exacttarget_jobs": ("member_id", "job_id"),
    "exacttarget_job_links": ("member_id", "job_id", "url", "name", "ordinal"),
    "exacttarget_job_lists": ("member_id", "job_id", "list_id"),
    "exacttarget_subscribers": ("member_id", "job_id", "subscriber_id", "list_id"),
}
_SUB = ("member_id", "job_id", "subscriber_id", "list_id")
EVENT_TIME = {
    "opens": "opened_at",
    "clicks": "clicked_at",
    "bounces": "bounced_at",
    "unsubscribes": "unsubscribed_at",
    "conversions": "converted_at",
    "survey_responses": "responded_at",
}
for _kind, _field in EVENT_TIME.items():
    PRIMARY_KEYS[f"exacttarget_{_kind}"] = (*_SUB, _field, "ordinal")


def iso(raw: str | None, tz: ZoneInfo) -> str | None:
    """`1/5/2024 1:07:09 PM` in the account zone -> ISO 8601 with offset."""
    if raw is None:
        return None
    return datetime.strptime(raw, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=tz).isoformat()


def _int(raw: str | None) -> int | None:
    return None if raw is None else int(raw)


def _pct(raw: str | None) -> float | None:
    return None if raw is None else float(raw.rstrip("%"))


def key(stream: str, record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[k] for k in PRIMARY_KEYS[stream])


def expected_records(
    truth: dict[str, list[dict[str, Any]]], tz: ZoneInfo
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Map the sandbox truth to {stream: {primary key: record}}."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in truth["jobs"]:
        out["exacttarget_jobs"].append(
            {
                "member_id": row["member_id"],
                "job_id": row["job_id"],
                "email_name": row["EmailName"],
                "email_subject": row["EmailSubject"],
                "from_name": row["FromName"],
                "from_email": row["FromEmail"],
                "additional": row["Additional"],
                "is_multipart": None
                if row["IsMultipart"] is None
                else row["IsMultipart"] == "True",
                "delivered_at": iso(row["DeliveredTime"], tz),
                "sent_count": _int(row["sentCount"]),
                "delivered_count": _int(row["deliveredCount"]),
                "undelivered_count": _int(row["undeliveredCount"]),
                "unsubscribed_count": _int(row["unSubscribedCount"]),
                "open_count": _int(row["openCount"]),
                "unique_click_count": _int(row["uniqueClickCount"]),
                "ftaf_email_forwarders": _int(row["email_forwarders"]),
                "ftaf_new_recipients": _int(row["new_recipients"]),
                "ftaf_new_subscribers": _int(row["new_subscribers"]),
                "conversion_summary": row["Conversion_Summary"],
                "extra": None,
            }
        )
    links_seen: dict[tuple[Any, ...], int] = defaultdict(int)
    for row in truth["job_links"]:
        url, name = row["URL"] or "", row["name"] or ""
        ident = (row["member_id"], row["job_id"], url, name)
        out["exacttarget_job_links"].append(
            {
                "member_id": row["member_id"],
                "job_id": row["job_id"],
                "url": url,
                "name": name,
                "ordinal": links_seen[ident],
                "click_throughs": _int(row["click_throughs"]),
                "percent": _pct(row["Percent"]),
                "net_ctr": _pct(row["Net_CTR"]),
            }
        )
        links_seen[ident] += 1
    for row in truth["job_lists"]:
        out["exacttarget_job_lists"].append(
            {
                "member_id": row["member_id"],
                "job_id": row["job_id"],
                "list_id": row["list_ID"],
                "list_name": row["list_name"],
            }
        )
    for row in truth["subscribers"]:
        out["exacttarget_subscribers"].append(
            {
                "member_id": row["member_id"],
                "job_id": row["job_id"],
                "subscriber_id": row["subscriber_id"],
                "list_id": row["list_id"] or "",
                "first_name": row["firstname"],
                "last_name": row["lastname"],
                "email": row["email"],
                "email_type": row["type"],
                "status": row["status"],
                "attributes": {k.replace("__", " "): v for k, v in row["attributes"].items()},
            }
        )
    ordinals: dict[tuple[Any, ...], int] = defaultdict(int)
    for kind, time_field in EVENT_TIME.items():
        for row in truth[kind]:
            raw_time = next(v for k, v in row.items() if k.lower().endswith("date"))
            base = {k: row[k] for k in _SUB}
            base["list_id"] = base["list_id"] or ""
            at = iso(raw_time, tz)
            ident = (kind, *base.values(), at)
            record: dict[str, Any] = {**base, time_field: at, "ordinal": ordinals[ident]}
            ordinals[ident] += 1
            if kind == "clicks":
                record.update(url=row["URL"], link_name=row["linkname"], extra=None)
            elif kind == "bounces":
                record.update(
                    bounce_type=row["bouncetype"],
                    smtp_code=row["smtpcode"],
                    reason=row["reason"],
                    extra=None,
                )
            elif kind == "unsubscribes":
                record.update(reason=row["reason"], extra=None)
            elif kind == "survey_responses":
                record.update(question=row["question"], answer=row["answer"], extra=None)
            elif kind == "conversions":
                record.update(
                    link_id=row["linkID"],
                    link_alias=row["linkAlias"],
                    link_uri=row["linkURI"],
                    data_set=[
                        {
                            "amount": float(d["amt"]),
                            "unit": d["unit"],
                            "accumulate": d["accumulate"] == "true",
                            "attributes": None,
                        }
                        for d in row["data_set"]
                    ],
                    extra=None,
                )
            out[f"exacttarget_{kind}"].append(record)
    result: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for stream, records in out.items():
        keyed = {key(stream, r): r for r in records}
        assert len(keyed) == len(records), f"duplicate keys in expected {stream}"
        result[stream] = keyed
    for stream in PRIMARY_KEYS:
        result.setdefault(stream, {})
    return result
