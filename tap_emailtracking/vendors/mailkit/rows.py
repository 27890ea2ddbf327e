"""Mailkit rows in one convention: lower-case names, integer ids, ISO 8601 times, extras kept.

Mailkit answers keys in other letter cases than it is asked in (`ID_undelivered_log` in,
`ID_UNDELIVERED_LOG` out) and mixes cases across functions; ids come as strings or numbers.
Every stream therefore emits the vendor's names in lower case (`id_undelivered_log`,
`type_message`), with the API's typo `ID_SEND_MESSGE` read as `id_send_message`; every `id_*`
column is an integer; times (`YYYY-MM-DD HH:MM:SS`, local to the account) carry the account's
offset; `custom_1` … `custom_25` go into one `custom_fields` object; any field not listed here
goes into `extra` rather than being dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tap_emailtracking.timestamps import LocalTimeFormatter

ALIASES = {"id_send_messge": "id_send_message"}


class BadValueError(ValueError):
    """A value that cannot be read as its column's type (the caller names the row)."""


def _integer(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise BadValueError(f"{text[:40]!r} is not a whole number") from None
        if not number.is_integer():
            raise BadValueError(f"{text[:40]!r} is not a whole number") from None
        return int(number)


def _number(value: object) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(str(value).strip().replace(",", "."))
    except ValueError:
        raise BadValueError(f"{str(value)[:40]!r} is not a number") from None


def _text(value: object) -> str | None:
    """A string column; empty is null (Mailkit sends "" for "no value")."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _json(value: object) -> Any:
    return value


def _strings(value: object) -> list[str] | None:
    """A list of ids as strings (a lone value becomes a list of one)."""
    if value is None or value == "":
        return None
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items]


INT, NUM, STR, TIME, JSON, STRINGS = "int", "num", "str", "time", "json", "strings"
Columns = Mapping[str, str]  # column -> type

BOUNCES: Columns = {
    "id_undelivered_log": INT,
    "id_message": INT,
    "id_send": INT,
    "id_send_message": INT,
    "id_email": INT,
    "id_user_list": INT,
    "email": STR,
    "status": STR,
    "text_status": STR,
    "bounce_cat": STR,
    "remote_mta": STR,
    "recipient_status": STR,
    "utm_campaign": STR,
    "campaign_name": STR,
    "subject": STR,
}
_PERSON = [
    "prefix",
    "vocative",
    "first_name",
    "last_name",
    "full_name",
    "nick_name",
    "gender",
    "reply_to",
    "company",
    "street",
    "city",
    "state",
    "country",
    "zip",
    "phone",
    "mobile",
    "fax",
    "s_continent",
    "s_country",
    "s_region",
    "s_city",
    "s_org",
    "s_browser",
    "s_os",
    "preview_url",
]
MESSAGES: Columns = {
    "id_send_message": INT,
    "id_message": INT,
    "id_send": INT,
    "id_user_list": INT,
    "id_email": INT,
    "id_template": INT,
    "type_message": STR,
    "email": STR,
    "email_date": TIME,
    "message_date": TIME,
    "date_sent": TIME,
    "ab_version": STR,
    "message_status": STR,
    "tld": STR,
    "domain": STR,
    **dict.fromkeys(_PERSON, STR),
    "custom_fields": JSON,
}
_VISIT = [
    "ab_version",
    "domain",
    "tld",
    "link_type",
    "link_url",
    "link_text",
    "link_title",
    "referer",
    "unsubscribe_answer",
    "ip",
    "ip_orig",
    "continent",
    "country",
    "code3",
    "code",
    "region",
    "region_code",
    "city",
    "user_agent",
    "browser",
    "browser_major",
    "browser_minor",
    "browser_type",
    "os",
    "os_version",
    "device",
    "org",
]
RESPONSES: Columns = {
    "id_log": INT,
    "date": TIME,
    "type": STR,
    "email": STR,
    "id_email": INT,
    "id_user_list": INT,
    "id_message": INT,
    "id_send": INT,
    "id_send_message": INT,
    "id_url": INT,
    **dict.fromkeys(_VISIT, STR),
}
CAMPAIGNS: Columns = {
    "id_message": INT,
    "name": STR,
    "subject": STR,
    "subject_b": STR,
    "msg_type": STR,
    "campaign_type": STR,
    "use_ab": STR,
    "test_mode": STR,
    "send_date": TIME,
    "time_zone": STR,
    "last_sent": TIME,
    "repeat": STR,
    "repeat_count": INT,
    "period": STR,
    "days": STR,
    "status": STR,
    "type": STR,
    "user_list": STRINGS,
}
_COUNTS = [
    "send_count",
    "delivered_count",
    "read_count",
    "read_count_u",
    "click_count",
    "click_count_u",
    "conversion_count",
    "conversion_count_u",
    "forward_count",
    "print_count",
    "unsubscribe",
    "spam_report",
]
SENDS: Columns = {
    "id_send": INT,
    "id_message": INT,
    "date": TIME,
    "date2": TIME,
    "subject": STR,
    "from": STR,
    **dict.fromkeys(_COUNTS, INT),
    "click_rate": NUM,
    "click_rate2": NUM,
    "rev": NUM,
}


class RowMapper:
    """Rows of one stream in the tap's convention; a plan is compiled once per key set."""

    def __init__(self, columns: Columns, formatter: LocalTimeFormatter) -> None:
        self.columns = columns
        self._formatter = formatter
        self._template: dict[str, Any] = dict.fromkeys(columns)
        self._customs = "custom_fields" in columns
        self._plans: dict[tuple[str, ...], list[tuple[str, str, Callable[[object], Any]]]] = {}
        self._converters: dict[str, Callable[[object], Any]] = {
            INT: _integer,
            NUM: _number,
            STR: _text,
            TIME: self.time,
            JSON: _json,
            STRINGS: _strings,
        }

    def time(self, value: object) -> str | None:
        """`YYYY-MM-DD HH:MM:SS` (or a date alone) local to the account, with its offset."""
        if value is None:
            return None
        text = str(value).strip()
        if not text or text.startswith("0000-00-00"):
            return None
        try:
            year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
            if len(text) == 10:
                return self._formatter.iso(year, month, day, 0, 0, 0)
            if len(text) < 19 or text[4] != "-" or text[10] not in " T":
                raise ValueError
            return self._formatter.iso(
                year, month, day, int(text[11:13]), int(text[14:16]), int(text[17:19])
            )
        except ValueError:
            raise BadValueError(f"the time {text[:40]!r} is not YYYY-MM-DD HH:MM:SS") from None

    def _plan(self, keys: tuple[str, ...]) -> list[tuple[str, str, Callable[[object], Any]]]:
        plan = []
        for key in keys:
            name = key.lower()
            name = ALIASES.get(name, name)
            kind = self.columns.get(name)
            if kind is not None:
                plan.append((key, name, self._converters[kind]))
            elif self._customs and name.startswith("custom_") and name[7:].isdigit():
                plan.append((key, "custom_fields", _text))
            else:
                plan.append((key, "extra", _json))
        self._plans[keys] = plan
        return plan

    def record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One row as emitted: every column present (null when absent)."""
        keys = tuple(row)
        plan = self._plans.get(keys) or self._plan(keys)
        record = dict(self._template)
        extra: dict[str, Any] | None = None
        customs: dict[str, Any] | None = None
        for key, column, convert in plan:
            if column == "extra":
                if extra is None:
                    extra = {}
                extra[key] = row[key]
            elif column == "custom_fields":
                if customs is None:
                    customs = {}
                customs[key.lower()] = _text(row[key])
            else:
                record[column] = convert(row[key])
        if self._customs:
            record["custom_fields"] = customs
        record["extra"] = extra
        return record
