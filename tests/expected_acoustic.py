"""What the tap must emit for the Acoustic sandbox's BEX ground truth, written independently of
the tap's row mapper (docs/acoustic.md is the specification both follow)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

BEX_NAMES = {
    "Email": "email",
    "RECIPIENT_ID": "recipient_id",
    "ENCODED_RECIPIENT_ID": "encoded_recipient_id",
    "contactId": "contact_id",
    "messageId": "message_id",
    "userAgent": "user_agent",
    "messageName": "message_name",
    "mailingTemplateId": "mailing_template_id",
    "subjectLine": "subject_line",
    "docType": "doc_type",
    "reportId": "report_id",
    "sendType": "send_type",
    "bounceType": "bounce_type",
    "urlDescription": "url_description",
    "clickUrl": "click_url",
    "optOutDetails": "opt_out_details",
    "messageGroupId": "message_group_id",
    "programId": "program_id",
    "originatedFrom": "originated_from",
    "externalSystemName": "external_system_name",
    "externalSystemReferenceId": "external_system_reference_id",
    "trackingCode": "tracking_code",
}
RRDE_ONLY = (
    "recipient_type",
    "campaign_id",
    "content_id",
    "click_name",
    "conversion_action",
    "conversion_detail",
    "conversion_amount",
    "suppression_reason",
)
LINEAGE = ("source_file", "source_line")
IDENTITY = ("recipient_id", "message_id", "report_id", "event_type", "occurred_at", "click_url")


def synthetic_key(kind: str, record: dict[str, Any], ordinals: dict[str, int]) -> str:
    """The documented key of a row without eventId: hash of its identity plus ordinal."""
    identity = "\x1f".join(str(record[k] or "") for k in IDENTITY)
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()
    key = f"{kind}:{digest}:{ordinals[identity]}"
    ordinals[identity] += 1
    return key


def bex_expected(
    rows: list[dict[str, str]], custom_columns: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """{event_id: record without lineage fields} for BEX truth rows (in file order)."""
    ordinals: dict[str, int] = defaultdict(int)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        record: dict[str, Any] = {name: (row.get(col) or None) for col, name in BEX_NAMES.items()}
        record.update(dict.fromkeys(RRDE_ONLY))
        record["event_type"] = row["code"]
        record["raw_event_type"] = None
        moment = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
        record["occurred_at"] = moment.isoformat()
        record["custom_columns"] = (
            {c: (row.get(c) or None) for c in custom_columns} if custom_columns else None
        )
        record["extra_columns"] = None
        event_id = row.get("eventId") or synthetic_key("bex", record, ordinals)
        record["event_id"] = event_id
        assert event_id not in out, f"duplicate expected key {event_id}"
        out[event_id] = record
    return out


def without_lineage(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in LINEAGE}


RRDE_NAMES = {
    "Recipient Id": "recipient_id",
    "Recipient Type": "recipient_type",
    "Mailing Id": "message_id",
    "Report Id": "report_id",
    "Campaign Id": "campaign_id",
    "Email": "email",
    "Body Type": "doc_type",
    "Content Id": "content_id",
    "Click Name": "click_name",
    "URL": "click_url",
    "Conversion Action": "conversion_action",
    "Conversion Detail": "conversion_detail",
    "Conversion Amount": "conversion_amount",
    "Suppression Reason": "suppression_reason",
}
RRDE_TYPES = {
    "Sent": "emailSend",
    "Open": "emailOpen",
    "Click Through": "emailClick",
    "Click": "emailClick",
    "Hard Bounce": "emailBounce",
    "Soft Bounce": "emailBounce",
    "Mail Block": "emailBounce",
    "Opt Out": "emailOptOut",
    "Suppressed": "emailSuppressed",
}


def rrde_expected(
    rows: list[dict[str, str]],
    custom_columns: tuple[str, ...],
    tz: Any,
) -> dict[str, dict[str, Any]]:
    """{event_id: record without lineage fields} for Raw Recipient Data truth rows."""
    ordinals: dict[str, int] = defaultdict(int)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        record: dict[str, Any] = dict.fromkeys(BEX_NAMES.values())
        record.update({name: (row.get(col) or None) for col, name in RRDE_NAMES.items()})
        word = row["Event Type"]
        record["raw_event_type"] = word
        record["event_type"] = RRDE_TYPES.get(word, word)
        local = datetime.strptime(row["Event Timestamp"], "%m/%d/%Y %H:%M:%S")
        record["occurred_at"] = local.replace(tzinfo=tz).isoformat()
        record["custom_columns"] = (
            {c: (row.get(c) or None) for c in custom_columns} if custom_columns else None
        )
        record["extra_columns"] = None
        record["event_id"] = synthetic_key("rrde", record, ordinals)
        assert record["event_id"] not in out
        out[record["event_id"]] = record
    return out
