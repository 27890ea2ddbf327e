"""impact.com rows in the tap's vocabulary: snake_case columns, typed numbers, nulls decided once.

impact sends every click value as a string ("0.0", "true") and marks missing values several
ways. The choice, for every column: `""`, `"null"` and `"n/a"` (any case) are null; `"NA"` is
null too, except in `customer_country` and `customer_region`, where it is a real code (Namibia).
`cpc_bid` and `payout` become numbers, `unique_click` a boolean; ids stay strings. The nested
`BrandRelated` and `PartnerRelated` (an object, or an array of one object) are flattened into
columns, as CSV files already have them; any other field is kept in `extra`. Keys are matched
case-insensitively, `CampaignId`/`CampaignName` read as `ProgramId`/`ProgramName`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

NULLS = frozenset({"", "null", "n/a"})
KEEP_NA = frozenset({"customer_country", "customer_region"})


class BadValueError(ValueError):
    """A value that cannot be read as its column's type (the caller names file and record)."""


def _null(value: object, column: str) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text.lower() in NULLS or (text == "NA" and column not in KEEP_NA)


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise BadValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise BadValueError(f"{str(value)[:40]!r} is not a number") from None


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise BadValueError(f"{text[:40]!r} is not true or false")


def _time(value: object) -> str:
    """ISO 8601 with its offset, checked (impact writes `2024-01-02T08:06:24-05:00`)."""
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadValueError(f"the time {text[:40]!r} is not ISO 8601") from None
    return moment.isoformat() if moment.tzinfo is not None else text


CLICK_COLUMNS: dict[str, tuple[str, Callable[[object], Any]]] = {
    "id": ("id", _text),
    "programid": ("program_id", _text),
    "campaignid": ("program_id", _text),
    "programname": ("program_name", _text),
    "campaignname": ("program_name", _text),
    "profileid": ("profile_id", _text),
    "ipaddress": ("ip_address", _text),
    "eventdate": ("event_date", _time),
    "mediaid": ("media_id", _text),
    "medianame": ("media_name", _text),
    "adid": ("ad_id", _text),
    "adname": ("ad_name", _text),
    "adtype": ("ad_type", _text),
    "productsku": ("product_sku", _text),
    "dealname": ("deal_name", _text),
    "dealtype": ("deal_type", _text),
    "dealscope": ("deal_scope", _text),
    "customerarea": ("customer_area", _text),
    "customercity": ("customer_city", _text),
    "customerregion": ("customer_region", _text),
    "customercountry": ("customer_country", _text),
    "devicetype": ("device_type", _text),
    "devicefamily": ("device_family", _text),
    "browser": ("browser", _text),
    "os": ("os", _text),
    "referringurl": ("referring_url", _text),
    "referringdomain": ("referring_domain", _text),
    "landingpageurl": ("landing_page_url", _text),
    "trafficcategory": ("traffic_category", _text),
    "trafficsource": ("traffic_source", _text),
    "bidkeyword": ("bid_keyword", _text),
    "searchtext": ("search_text", _text),
    "sharedid": ("shared_id", _text),
    "cpcbid": ("cpc_bid", _number),
    "payout": ("payout", _number),
    "uniqueclick": ("unique_click", _boolean),
    "adcampaign": ("ad_campaign", _text),
    "adgroup": ("ad_group", _text),
    "keyword": ("keyword", _text),
    "matchtype": ("match_type", _text),
    "channel": ("channel", _text),
    "subid1": ("sub_id1", _text),
    "subid2": ("sub_id2", _text),
    "subid3": ("sub_id3", _text),
}
NESTED = frozenset({"brandrelated", "partnerrelated"})
Plan = tuple[tuple[tuple[str, str, Callable[[object], Any]], ...], tuple[str, ...], tuple[str, ...]]


class ClickMapper:
    """Click rows (JSON objects or CSV rows by header) as emitted, planned once per key set."""

    def __init__(self) -> None:
        self._template: dict[str, Any] = dict.fromkeys(c for c, _ in CLICK_COLUMNS.values())
        self._plans: dict[tuple[str, ...], Plan] = {}

    def _plan(self, keys: tuple[str, ...]) -> Plan:
        known, nested, extra = [], [], []
        for key in keys:
            name = key.lower()
            if name in CLICK_COLUMNS:
                column, convert = CLICK_COLUMNS[name]
                known.append((key, column, convert))
            elif name in NESTED:
                nested.append(key)
            else:
                extra.append(key)
        plan = self._plans[keys] = (tuple(known), tuple(nested), tuple(extra))
        return plan

    def record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """One click: every column present (null when absent or null-like)."""
        keys = tuple(raw)
        known, nested, extra = self._plans.get(keys) or self._plan(keys)
        record = self._template.copy()
        for key, column, convert in known:
            value = raw[key]
            if not _null(value, column):
                record[column] = convert(value)
        for key in nested:
            for inner_key, value in _flatten(raw[key]).items():
                found = CLICK_COLUMNS.get(inner_key.lower())
                if found is not None and not _null(value, found[0]):
                    record[found[0]] = found[1](value)
        record["extra"] = {key: raw[key] for key in extra} or None
        for column in ("id", "program_id", "event_date"):
            if record[column] is None:
                raise BadValueError(f"a click without {column}")
        return record


def _flatten(value: object) -> Mapping[str, Any]:
    """`BrandRelated`/`PartnerRelated`: an object, or an array of (at most) one object."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, Mapping):
                merged.update(item)
        return merged
    return {}


def report_record(
    raw: Mapping[str, Any], key_fields: tuple[str, ...], window: tuple[str, str]
) -> dict[str, Any]:
    """A report row: its key columns on top (strings), every column in `fields` as sent."""
    lowered = {str(k).lower(): k for k in raw}
    record: dict[str, Any] = {}
    for name in key_fields:
        key = lowered.get(name.lower())
        value = None if key is None else raw[key]
        if value is None or (isinstance(value, str) and value.strip().lower() in NULLS):
            raise BadValueError(f"a row without its key field {name}")
        record[name] = _text(value)
    record["fields"] = dict(raw)
    record["window_start"], record["window_end"] = window
    return record
