"""Pinpointe records in the tap's vocabulary: typed columns, UTC times, unknown fields kept.

Pinpointe sends every value as a string and documents few field names (docs/pinpointe.md), so
keys are matched case-insensitively, known fields become typed columns, and everything else is
kept in `extra` rather than dropped. Ids stay strings: they are numeric in every sample, but a
non-numeric id must never fail a sync [I]. Times become UTC ISO 8601 whatever their spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timezone
from typing import Any

UTC = timezone.utc
NULL_WORDS = frozenset({"", "0", "null", "none", "n/a", "0000-00-00", "0000-00-00 00:00:00"})
_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})
_DIGITS = re.compile(r"^\d+(\.\d+)?$")


class BadValueError(ValueError):
    """A value that cannot be read as its column's type (the caller names file and record)."""


def utc_time(value: object) -> str | None:
    """Epoch seconds, Zulu, ISO with an offset, `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYYMMDD`.

    An 8-digit number that is a valid date is read as `YYYYMMDD` (as an epoch it would fall in
    1970); "0" and empty mean no time. Exports hold millions of times: the common spellings
    take a fast path (the C parser checks them, the text is cut rather than formatted).
    """
    if value is None or isinstance(value, bool):
        return None
    text = value if isinstance(value, str) else str(value)
    size = len(text)
    if size == 10 and text.isdigit():  # epoch seconds (2001-2286)
        return _epoch_time(int(text))
    if 19 <= size <= 20 and text[10] in " T" and (size == 19 or text[19] in "Zz"):
        try:
            datetime.fromisoformat(text[:19])  # checks it (C), no object kept
        except ValueError:
            pass
        else:
            return f"{text[:10]}T{text[11:19]}+00:00"
    return _any_time(text.strip())


_DAYS: dict[int, str] = {}


def _epoch_time(seconds: int) -> str:
    """Epoch seconds as UTC ISO text, the day's text cached."""
    days, rest = divmod(seconds, 86_400)
    day = _DAYS.get(days)
    if day is None:
        day = _DAYS[days] = datetime.fromtimestamp(days * 86_400, UTC).date().isoformat()
    hours, rest = divmod(rest, 3600)
    return f"{day}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}+00:00"


def _any_time(text: str) -> str | None:
    if text.lower() in NULL_WORDS:
        return None
    if _DIGITS.match(text):
        if len(text) == 8:
            try:
                day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
                return f"{day.isoformat()}T00:00:00+00:00"
            except ValueError:
                pass
        seconds = float(text)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        return _epoch_time(int(seconds))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadValueError(f"the time {text[:40]!r} is in no known format") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds")


def integer(value: object) -> int | None:
    """A count sent as a string ("12", "12.0"); empty means unknown."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.lower() in ("", "null", "none", "n/a"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise BadValueError(f"{text[:40]!r} is not a number") from None
    if not number.is_integer():
        raise BadValueError(f"{text[:40]!r} is not a whole number")
    return int(number)


def boolean(value: object) -> bool | None:
    """ "1"/"0", "true"/"false", "yes"/"no"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False if text else None
    raise BadValueError(f"{text[:40]!r} is not true or false")


def text(value: object) -> str | None:
    """A string column; empty is null."""
    if value is None:
        return None
    result = str(value) if not isinstance(value, str) else value
    return result if result.strip() else None


Convert = Callable[[object], Any]
Fields = Mapping[str, tuple[str, Convert]]  # vendor name (lower case) -> (column, converter)

LIST_FIELDS: Fields = {
    "listid": ("list_id", text),
    "name": ("name", text),
    "ownerid": ("owner_id", text),
    "ownername": ("owner_name", text),
    "createdate": ("created_at", utc_time),
    "subscribecount": ("subscribe_count", integer),
    "unsubscribecount": ("unsubscribe_count", integer),
}
SEGMENT_FIELDS: Fields = {
    "segmentid": ("segment_id", text),
    "segmentname": ("name", text),
    "name": ("name", text),
    "ownerid": ("owner_id", text),
    "createdate": ("created_at", utc_time),
    "contacts": ("contacts", integer),
}
TAG_FIELDS: Fields = {
    "tagid": ("tag_id", text),
    "tagname": ("name", text),
    "name": ("name", text),
    "ownerid": ("owner_id", text),
    "createdate": ("created_at", utc_time),
    "subscribecount": ("subscribe_count", integer),
}
SEND_FIELDS: Fields = {
    "statid": ("stat_id", text),
    "newsletterid": ("newsletter_id", text),
    "name": ("name", text),
    "subject": ("subject", text),
    "ownername": ("owner_name", text),
    "lastupdated": ("last_updated_at", utc_time),
    "starttime": ("started_at", utc_time),
    "finishtime": ("finished_at", utc_time),
    "sentto": ("recipients", integer),
}
SUBSCRIBER_FIELDS: Fields = {
    "subscriberid": ("subscriber_id", text),
    "emailaddress": ("email", text),
    "email": ("email", text),
    "status": ("status", text),
    "format": ("format", text),
    "confirmed": ("confirmed", boolean),
    "subscribedate": ("subscribed_at", utc_time),
    "confirmdate": ("confirmed_at", utc_time),
    "unsubscribedate": ("unsubscribed_at", utc_time),
    "bouncedate": ("bounced_at", utc_time),
    "ipaddress": ("ip_address", text),
}
# Unit ids the result may repeat: the unit's own id is authoritative, so these are not "extra".
UNIT_ID_FIELDS = frozenset({"listid", "segmentid", "tagid", "statid"})
ACTIVITY_FIELDS: Fields = {
    "subscriberid": ("subscriber_id", text),
    "emailaddress": ("email", text),
    "email": ("email", text),
    "eventtype": ("event_type", text),
    "type": ("event_type", text),
    "eventtime": ("event_at", utc_time),
    "time": ("event_at", utc_time),
    "linkurl": ("url", text),
    "url": ("url", text),
    "ipaddress": ("ip_address", text),
    "useragent": ("user_agent", text),
}
NESTED_EVENTS = {"opens": "open", "clicks": "click"}
CUSTOM_FIELD_NAME = ("fieldname", "name", "field_name", "fieldid")
CUSTOM_FIELD_VALUE = ("fieldvalue", "value", "data", "field_value")


Plan = tuple[tuple[tuple[str, str, Convert], ...], tuple[str, ...], dict[str, str]]
ROLES = {"customfields": "customfields", "membership": "membership", "opens": "opens"}
ROLES |= {"clicks": "clicks", "tags": "membership", "lists": "membership"}


class FieldMapper:
    """Vendor records to (typed columns, extra, special members), planned once per key set.

    Records of one file share their keys, so the case-insensitive matching is done once per set
    of keys, not once per record. `roles` names members the caller reads itself (custom fields,
    membership, nested events); `skip` names members dropped (the unit's own id).
    """

    def __init__(
        self, fields: Fields, *, skip: frozenset[str] = frozenset(), roles: bool = False
    ) -> None:
        self.fields = fields
        self.skip = skip
        self.roles = roles
        self.template: dict[str, Any] = dict.fromkeys(column for column, _ in fields.values())
        self._plans: dict[tuple[str, ...], Plan] = {}

    def plan(self, keys: tuple[str, ...]) -> Plan:
        """How records with these keys map: (key, column, converter)s, extra keys, roles."""
        plan = self._plans.get(keys)
        if plan is None:
            known, extra, roles = [], [], {}
            for key in keys:
                name = str(key).lower()
                if name in self.fields:
                    column, convert = self.fields[name]
                    known.append((key, column, convert))
                elif self.roles and name in ROLES:
                    roles[ROLES[name]] = key
                elif name not in self.skip:
                    extra.append(key)
            plan = self._plans[keys] = (tuple(known), tuple(extra), roles)
        return plan

    def map(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, Plan]:
        """(typed columns, extra or None, the plan) of one record."""
        plan = self.plan(tuple(raw))
        record = self.template.copy()
        for key, column, convert in plan[0]:
            converted = convert(raw[key])
            if converted is not None or record[column] is None:
                record[column] = converted
        extra = {str(key): raw[key] for key in plan[1]} if plan[1] else None
        return record, extra, plan


def listing_record(raw: Mapping[str, Any], mapper: FieldMapper) -> dict[str, Any]:
    """A list, segment, tag or send as emitted."""
    record, extra, _ = mapper.map(raw)
    record["extra"] = extra
    return record


def custom_fields(value: object) -> dict[str, Any] | None:
    """Custom fields as one object name -> value (empty is null, as CSV cannot tell them apart),
    from a list of field objects or an object."""
    if value is None or value in ("", []):
        return None
    if isinstance(value, Mapping):
        return {str(k): None if v == "" else v for k, v in value.items()} or None
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, Mapping):
                raise BadValueError("customfields holds something that is not a field object")
            if "fieldname" in item and "fieldvalue" in item and item["fieldname"]:
                found = item["fieldvalue"]
                out[str(item["fieldname"])] = None if found == "" else found
                continue
            lowered = {str(k).lower(): v for k, v in item.items()}
            name = next((lowered[k] for k in CUSTOM_FIELD_NAME if lowered.get(k)), None)
            if name is None:
                raise BadValueError("a custom field without a name")
            found = next((lowered[k] for k in CUSTOM_FIELD_VALUE if k in lowered), None)
            out[str(name)] = None if found == "" else found
        return out or None
    raise BadValueError("customfields is neither a list nor an object")


SUBSCRIBERS = FieldMapper(SUBSCRIBER_FIELDS, skip=UNIT_ID_FIELDS, roles=True)


def subscriber_record(
    raw: Mapping[str, Any], *, unit_column: str, unit_id: str, snapshot_at: str, job_id: str
) -> dict[str, Any]:
    """One member of a list, segment or tag, stamped with its export's snapshot time."""
    record, extra, (_, _, roles) = SUBSCRIBERS.map(raw)
    if not record["subscriber_id"]:
        raise BadValueError("a subscriber without subscriberid")
    for role in ("opens", "clicks"):  # not subscriber members: kept as sent
        if role in roles:
            extra = {**(extra or {}), roles[role]: raw[roles[role]]}
    customs = roles.get("customfields")
    membership = roles.get("membership")
    record[unit_column] = unit_id
    record["custom_fields"] = None if customs is None else custom_fields(raw[customs])
    record["membership"] = None if membership is None else raw[membership]
    record["extra"] = extra
    record["snapshot_at"] = snapshot_at
    record["source_job_id"] = job_id
    return record


def csv_subscriber(header: list[str], fields: list[str]) -> dict[str, Any]:
    """A CSV row as the JSON shape: standard columns by name, every other column a custom field."""
    raw: dict[str, Any] = {}
    customs: dict[str, Any] = {}
    for name, value in zip(header, fields, strict=False):
        lowered = name.lower()
        if lowered in SUBSCRIBER_FIELDS or lowered in UNIT_ID_FIELDS:
            raw[name] = value
        elif name:
            customs[name] = value
    raw["customfields"] = customs
    return raw


class ActivityMapper:
    """Contact activity of one send's result file: one record per open or click.

    Events that share the key's fields (same contact, type and second) get ordinals 0, 1, … in
    file order, so the key (send, subscriber, type, time, ordinal) is unique and the same on every
    run (two clicks in one second on different links are two rows, told apart by the ordinal).
    The counts are kept per file, one short string per distinct (contact, type, second): about
    100 bytes each, so memory follows the largest send's file, not the run.
    """

    def __init__(self, stat_id: str, job_id: str) -> None:
        self.stat_id = stat_id
        self.job_id = job_id
        self._ordinals: dict[str, int] = {}
        self._fields = FieldMapper(ACTIVITY_FIELDS, skip=UNIT_ID_FIELDS, roles=True)

    def records(self, raw: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The events of one result record: itself (flat), or its opens and clicks (nested)."""
        roles = self._fields.plan(tuple(raw))[2]
        nested = {role: roles[role] for role in ("opens", "clicks") if role in roles}
        if not nested:
            yield self._event(raw, None)
            return
        contact = {k: v for k, v in raw.items() if k not in nested.values()}
        for role, key in nested.items():
            events = raw[key] or []
            if not isinstance(events, list):
                raise BadValueError(f"{key} is not a list of events")
            for event in events:
                fields = event if isinstance(event, Mapping) else {"time": event}  # a bare time
                yield self._event({**contact, **fields}, NESTED_EVENTS[role])

    def _event(self, raw: Mapping[str, Any], event_type: str | None) -> dict[str, Any]:
        record, extra, (_, _, roles) = self._fields.map(raw)
        for key in roles.values():  # custom fields or membership beside an event: kept
            extra = {**(extra or {}), key: raw[key]}
        kind = event_type or record["event_type"]
        if kind:
            kind = record["event_type"] = kind.strip().lower()
        subscriber, at = record["subscriber_id"], record["event_at"]
        if not subscriber or not kind or not at:
            missing = (
                "subscriber_id" if not subscriber else "event_type" if not kind else "event_at"
            )
            raise BadValueError(f"an activity record without {missing}")
        identity = f"{subscriber}\x1f{kind}\x1f{at}"
        ordinal = self._ordinals.get(identity, 0)
        self._ordinals[identity] = ordinal + 1
        record["stat_id"] = self.stat_id
        record["ordinal"] = ordinal
        record["extra"] = extra
        record["source_job_id"] = self.job_id
        return record
