"""Rows of BEX and Raw Recipient Data files to schema-shaped email event records.

The header drives everything: columns are looked up by name once per file, a known column that is
missing is null, the configured custom columns go to `custom_columns`, and any other column is kept
in `extra_columns`, never dropped. BEX rows are keyed by `eventId`; a row without one, and every
RRDE row, gets a deterministic key (a hash of the fields that identify the event plus its ordinal
among identical rows of the file), so re-reading a file always yields the same keys.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.timestamps import LocalTimeFormatter

VENDOR = "Acoustic"

# BEX column (seed page) -> record property. `code`, `timestamp` and `eventId` are special.
BEX_COLUMNS = {
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
# RRDE column -> record property (`Event Type` and `Event Timestamp` are special).
RRDE_COLUMNS = {
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
RRDE_EVENT_TYPES = {
    "sent": "emailSend",
    "open": "emailOpen",
    "click through": "emailClick",
    "click": "emailClick",
    "hard bounce": "emailBounce",
    "soft bounce": "emailBounce",
    "mail block": "emailBounce",
    "opt out": "emailOptOut",
    "suppressed": "emailSuppressed",
}
TEMPLATE: dict[str, Any] = {
    "event_id": None,
    "event_type": None,
    "raw_event_type": None,
    "occurred_at": None,
    **dict.fromkeys(BEX_COLUMNS.values()),
    **dict.fromkeys(v for v in RRDE_COLUMNS.values() if v not in BEX_COLUMNS.values()),
    "custom_columns": None,
    "extra_columns": None,
    "source_file": None,
    "source_line": None,
}
_SIXTY = "012345"  # the first digit of a valid minute or second
_DIGITS = "0123456789"
_IDENTITY = ("recipient_id", "message_id", "report_id", "event_type", "occurred_at", "click_url")


def _pick_one_or_none(indices: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    """`itemgetter` for 0 or 1 index, returning a tuple like it does for 2 or more."""
    return lambda fields: tuple(fields[i] for i in indices)


class RowMapper:
    """Turn one file's rows into records; built from the file's header."""

    def __init__(
        self,
        header: list[str],
        *,
        kind: str,
        custom_columns: tuple[str, ...],
        formatter: LocalTimeFormatter,
        file_name: str,
        stream: str | None,
    ) -> None:
        self._kind = kind
        self._formatter = formatter
        self._file = file_name
        self._stream = stream
        known = BEX_COLUMNS if kind == "bex" else RRDE_COLUMNS
        type_column, time_column = (
            ("code", "timestamp") if kind == "bex" else ("Event Type", "Event Timestamp")
        )
        self._fields: list[tuple[int, str]] = []
        self._custom: list[tuple[int, str]] = []
        self._extra: list[tuple[int, str]] = []
        self._type_at = self._time_at = self._id_at = -1
        customs = set(custom_columns)
        for index, name in enumerate(header):
            if name == type_column:
                self._type_at = index
            elif name == time_column:
                self._time_at = index
            elif kind == "bex" and name == "eventId":
                self._id_at = index
            elif name in known:
                self._fields.append((index, known[name]))
            elif name in customs:
                self._custom.append((index, name))
            elif name:
                self._extra.append((index, name))
        if self._type_at < 0 or self._time_at < 0:
            raise CorruptFileError(
                f"the header lacks the {type_column!r} or {time_column!r} column",
                vendor=VENDOR,
                stream=stream,
                subject=file_name,
                action="check the job definition's file format, or that the folder holds only "
                "this definition's exports",
            )
        self._ordinals: dict[str, int] = {}
        # A parsed time's start (see `occurred_at`) -> what its ISO text begins and ends with.
        self._known_starts: dict[str, tuple[str, str]] = {}
        # Per file: the constant properties once, the mapped columns as one C-level lookup.
        self._template = {**TEMPLATE, "source_file": file_name}
        self._names = tuple(name for _, name in self._fields)
        indices = [index for index, _ in self._fields]
        self._pick: Callable[[list[str]], tuple[str, ...]] = (
            operator.itemgetter(*indices) if len(indices) > 1 else _pick_one_or_none(indices)
        )

    def _bad(self, what: str, line: int) -> CorruptFileError:
        return CorruptFileError(
            f"{what} at line {line}",
            vendor=VENDOR,
            stream=self._stream,
            subject=self._file,
            action="ask Acoustic to regenerate the file, or set acoustic.on_bad_row to skip; "
            "state was not advanced",
        )

    def occurred_at(self, raw: str, line: int) -> str:
        """ISO 8601 with offset from `…Z`, an offset, or `MM/DD/YYYY HH:MM:SS` (local).

        Millions of rows share few starts: BEX's `YYYY-MM-DDTHH:MM:SSZ` a minute, RRDE's
        `MM/DD/YYYY HH:MM:SS` an hour. Once a start has parsed, a time that only adds valid
        digits to it is put together from that parse: the very text a parse would give.
        """
        if len(raw) == 20:
            if raw[19] == "Z" and raw[17] in _SIXTY and raw[18] in _DIGITS:
                known = self._known_starts.get(raw[:17])
                if known is not None:
                    return raw[:19] + known[1]
        elif (
            len(raw) == 19
            and raw[13] == ":"
            and raw[16] == ":"
            and raw[14] in _SIXTY
            and raw[15] in _DIGITS
            and raw[17] in _SIXTY
            and raw[18] in _DIGITS
        ):
            known = self._known_starts.get(raw[:13])
            if known is not None:
                return f"{known[0]}{raw[14:16]}:{raw[17:19]}{known[1]}"
        value = self._parse_time(raw, line)
        if len(self._known_starts) > 100_000:
            self._known_starts.clear()
        if len(raw) == 20 and raw[19] == "Z" and value == raw[:19] + "+00:00":
            self._known_starts[raw[:17]] = (raw[:17], "+00:00")
        elif len(raw) == 19 and "/" in raw and value[14:19] == raw[14:19]:
            self._known_starts[raw[:13]] = (value[:14], value[19:])
        return value

    def _parse_time(self, raw: str, line: int) -> str:
        text = raw.strip()
        try:
            if "/" in text:
                parsed = datetime.strptime(text, "%m/%d/%Y %H:%M:%S")
                return self._formatter.iso(
                    parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second
                )
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.isoformat()
        except ValueError:
            raise self._bad(f"unreadable event time {raw!r}", line) from None

    def record(self, line: int, fields: list[str]) -> dict[str, Any]:
        """One row as a record (every schema property present)."""
        record = self._template.copy()
        record.update(zip(self._names, [v or None for v in self._pick(fields)], strict=True))
        raw_type = fields[self._type_at].strip()
        if not raw_type:
            raise self._bad("a row without an event type", line)
        if self._kind == "bex":
            record["event_type"] = raw_type
        else:
            record["raw_event_type"] = raw_type
            record["event_type"] = RRDE_EVENT_TYPES.get(raw_type.lower(), raw_type)
        if not fields[self._time_at].strip():
            raise self._bad("a row without an event time", line)
        record["occurred_at"] = self.occurred_at(fields[self._time_at], line)
        if self._custom:
            record["custom_columns"] = {name: fields[i] or None for i, name in self._custom}
        if self._extra:
            record["extra_columns"] = {name: fields[i] or None for i, name in self._extra}
        record["source_line"] = line
        event_id = fields[self._id_at].strip() if self._id_at >= 0 else ""
        if not event_id:
            identity = "\x1f".join(str(record[k] or "") for k in _IDENTITY)
            ordinal = self._ordinals.get(identity, 0)
            self._ordinals[identity] = ordinal + 1
            digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()
            event_id = f"{self._kind}:{digest}:{ordinal}"
        record["event_id"] = event_id
        return record


def map_rows(
    rows: Iterator[tuple[int, list[str]]],
    mapper: RowMapper,
    *,
    wanted: Callable[[str], bool],
) -> Iterator[dict[str, Any]]:
    """Records of the wanted event types."""
    for line, fields in rows:
        record = mapper.record(line, fields)
        if wanted(record["event_type"]):
            yield record
