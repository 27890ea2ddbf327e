"""Mailkit's unit of work: one page of a raw function, read from the last id emitted.

A raw function returns at most 25,000 rows from a start id, in ascending id order [I]. The walk
asks from the bookmark (the largest id emitted) and drops the row equal to it, which is right
whether Mailkit's start id is inclusive (as both peers found) or not, so no row is emitted twice
and none is skipped. A page whose ids are not ascending is sorted before it is emitted (warned
and counted), so the bookmark is always the largest id emitted. The walk ends on an empty page,
or on the first page shorter than the page size: that page was the end of the data when it was
read, and rows that arrive afterwards are left for the next run, so a busy account cannot keep a
sync going for ever. The bookmark moves only after a page's records are emitted.

Calls go one at a time, at least `raw_call_interval_seconds` apart (Mailkit limits how often the
raw functions may be called); 5xx, 429, timeouts and dropped connections are retried with
backoff by the shared HTTP transport.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import cache
from itertools import pairwise, product
from typing import Any

import msgspec

from tap_emailtracking import summary
from tap_emailtracking.errors import VendorError
from tap_emailtracking.timestamps import LocalTimeFormatter, zone
from tap_emailtracking.transports.http import VendorHttp
from tap_emailtracking.transports.ratelimit import RateBudget
from tap_emailtracking.vendors.mailkit.client import VENDOR, MailkitClient
from tap_emailtracking.vendors.mailkit.rows import (
    ALIASES,
    BOUNCES,
    CAMPAIGNS,
    MESSAGES,
    RESPONSES,
    SENDS,
    BadValueError,
    Columns,
    RowMapper,
)
from tap_emailtracking.vendors.mailkit.settings import MailkitSettings

LOGGER = logging.getLogger("tap_emailtracking.mailkit")
UTC = timezone.utc
UNSORTED = "pages sorted by id (Mailkit sent them out of order)"


@dataclass(frozen=True)
class RawFunction:
    """A raw report function: its name, its start-id parameter, its id column and its rows."""

    function: str
    start_parameter: str
    id_column: str
    columns: Columns


RAW_FUNCTIONS = {
    "bounces": RawFunction(
        "mailkit.report.raw.bounces", "ID_undelivered_log", "id_undelivered_log", BOUNCES
    ),
    "messages": RawFunction(
        "mailkit.report.raw.messages", "ID_send_message", "id_send_message", MESSAGES
    ),
    "responses": RawFunction("mailkit.report.raw.responses", "ID_log", "id_log", RESPONSES),
}


@dataclass(frozen=True)
class Page:
    """The new records of one page, in id order (read as they are emitted), and the largest id
    among them: the bookmark once they are all out."""

    records: Iterator[dict[str, Any]]
    last_id: int


@cache
def id_reader(key: str) -> Any:
    """A row type that decodes only the id member `key` (the other members are skipped)."""
    return msgspec.defstruct("RowId", [("value", int | str | None, None)], rename={"value": key})


class PageIds:
    """The ids of one page, read without building its rows, checked and put in order."""

    def __init__(
        self, rows: list[msgspec.Raw], raw: RawFunction, *, what: str, stream: str
    ) -> None:
        self.rows = rows
        self.raw = raw
        self.what = what
        self.stream = stream
        first = self.decode(0)
        key = next((k for k in first if ALIASES.get(k.lower(), k.lower()) == raw.id_column), None)
        if key is None:
            raise self.error(f"row 1 has no {raw.id_column}")
        reader = id_reader(key)
        try:
            values: list[Any] = [msgspec.json.decode(row, type=reader).value for row in rows]
        except (msgspec.DecodeError, msgspec.ValidationError):
            values = [None]
        if any(v is None for v in values):  # a row keyed in another case, or not an object
            values = [self.id_of(self.decode(i), i) for i in range(len(rows))]
        try:
            self.values = [int(v) for v in values]
        except ValueError:
            raise self.error(f"an id that is not a whole number ({raw.id_column})") from None

    def order(self, after: int | None) -> list[int]:
        """Indexes of the rows past `after`, in ascending id order (sorted, with a warning and a
        count in the summary, if the page was not)."""
        values = self.values
        if any(a >= b for a, b in pairwise(values)):
            if len(set(values)) != len(values):
                raise self.error("the page repeats an id")
            LOGGER.warning("Mailkit: %s: rows were not in id order; sorted", self.what)
            summary.note(VENDOR, UNSORTED)
            indexes = sorted(range(len(values)), key=values.__getitem__)
        else:
            indexes = list(range(len(values)))
        return [i for i in indexes if after is None or values[i] > after]

    def records(self, order: list[int], mapper: RowMapper) -> Iterator[dict[str, Any]]:
        """The rows at `order`, each decoded and mapped only when it is emitted."""
        for i in order:
            try:
                yield mapper.record(self.decode(i))
            except BadValueError as exc:
                raise self.error(f"row {i + 1} cannot be read: {exc}") from None

    def decode(self, index: int) -> dict[str, Any]:
        row = msgspec.json.decode(self.rows[index])
        if not isinstance(row, dict):
            raise self.error(f"row {index + 1} is not an object")
        return row

    def id_of(self, row: dict[str, Any], index: int) -> Any:
        for key, value in row.items():
            if ALIASES.get(key.lower(), key.lower()) == self.raw.id_column and value not in (
                None,
                "",
            ):
                return value
        raise self.error(f"row {index + 1} has no {self.raw.id_column}")

    def error(self, what: str) -> VendorError:
        return VendorError(
            f"{self.what}: {what}",
            vendor=VENDOR,
            stream=self.stream,
            action="re-run; if it repeats, report it to Mailkit support with this message",
        )


def filter_sets(settings: MailkitSettings) -> list[dict[str, str]]:
    """Every filter set to walk: each campaign with each send configured (one empty set: all)."""
    campaigns: Sequence[str | None] = settings.campaign_ids or [None]
    sends: Sequence[str | None] = settings.send_ids or [None]
    sets = []
    for campaign, send in product(campaigns, sends):
        chosen = {"ID_message": campaign, "ID_send": send}
        sets.append({k: v for k, v in chosen.items() if v is not None})
    return sets


def filter_key(filters: dict[str, str]) -> str:
    """A filter set's bookmark key: `all`, or `ID_message=12;ID_send=34`."""
    return ";".join(f"{k}={v}" for k, v in sorted(filters.items())) or "all"


class MailkitExports:
    """The API client, its call pacing and the row mappers of one sync."""

    def __init__(
        self,
        settings: MailkitSettings,
        *,
        start_date: date,
        end_date: date | None,
        sleep: Any = time.sleep,
        now: Any = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.start_date = start_date
        self.end_date = end_date
        self.now = now
        budget = RateBudget(
            VENDOR, min_interval_seconds=settings.raw_call_interval_seconds, sleep=sleep
        )
        self.http = VendorHttp(
            vendor=VENDOR, policy=settings.http_policy(), sleep=sleep, budget=budget
        )
        self.client = MailkitClient(settings, self.http)
        self.formatter = LocalTimeFormatter(zone(settings.timezone))
        self._campaigns: list[dict[str, Any]] | None = None

    def mapper(self, columns: Columns) -> RowMapper:
        """A row mapper in the account's time zone."""
        return RowMapper(columns, self.formatter)

    # -- raw functions ------------------------------------------------------------------------

    def raw_pages(
        self,
        kind: str,
        filters: dict[str, str],
        after: int | None,
        *,
        stream: str,
    ) -> Iterator[Page]:
        """Pages of new records after id `after` (None: from the first row), to the end."""
        raw = RAW_FUNCTIONS[kind]
        mapper = self.mapper(raw.columns)
        size = self.settings.page_size
        label = filter_key(filters)
        total = 0
        while True:
            start = "the first row" if after is None else f"{raw.start_parameter} {after}"
            what = f"{raw.function} ({label}) from {start}"
            parameters: dict[str, Any] = {**filters, "limit": size}
            if after is not None:
                parameters[raw.start_parameter] = after
            rows = self.client.raw_rows(raw.function, parameters, stream=stream, what=what)
            if not rows:
                break
            ids = PageIds(rows, raw, what=what, stream=stream)
            order = ids.order(after)
            if order:
                last = ids.values[order[-1]]
                total += len(order)
                yield Page(ids.records(order, mapper), last)
                after = last
            elif len(rows) >= size:
                raise VendorError(
                    f"{what} answered a full page without a row past {after}",
                    vendor=VENDOR,
                    stream=stream,
                    action="raise mailkit.page_size, or report it to Mailkit support",
                )
            if len(rows) < size:
                break  # the end of the data as this page saw it; later rows wait for next run
        LOGGER.info("Mailkit: %s (%s): %d new rows", raw.function, label, total)

    # -- enumeration --------------------------------------------------------------------------

    def campaigns(self, *, stream: str) -> list[dict[str, Any]]:
        """Every campaign (or the configured ones), read once per sync."""
        if self._campaigns is None:
            mapper = self.mapper(CAMPAIGNS)
            wanted = self.settings.campaign_ids
            rows: list[dict[str, Any]] = []
            for campaign in wanted or [None]:
                top = None if campaign is None else {"ID_message": campaign}
                rows += self.client.call("mailkit.campaigns.list", stream=stream, top_level=top)
            self._campaigns = [
                self._mapped(mapper, row, "mailkit.campaigns.list", stream) for row in rows
            ]
        return self._campaigns

    def sends(self, *, stream: str) -> Iterator[dict[str, Any]]:
        """Every send of every campaign (or the configured sends) from start_date to end_date
        (or today)."""
        mapper = self.mapper(SENDS)
        today = self.now().date()
        until = today if self.end_date is None else min(self.end_date, today)
        sends = set(self.settings.send_ids or ())
        for campaign in self.campaigns(stream=stream):
            campaign_id = campaign["id_message"]
            rows = self.client.call(
                "mailkit.report.campaign",
                {
                    "ID_message": campaign_id,
                    "range_from": self.start_date.isoformat(),
                    "range_to": until.isoformat(),
                },
                stream=stream,
            )
            for row in rows:
                record = self._mapped(mapper, row, "mailkit.report.campaign", stream)
                if sends and str(record["id_send"]) not in sends:
                    continue  # send_ids narrows sends as it narrows the raw rows
                record["id_message"] = campaign_id
                yield record

    def _mapped(
        self, mapper: RowMapper, row: dict[str, Any], function: str, stream: str
    ) -> dict[str, Any]:
        try:
            return mapper.record(row)
        except BadValueError as exc:
            raise VendorError(
                f"{function} answered a row that cannot be read: {exc}",
                vendor=VENDOR,
                stream=stream,
                action="re-run; if it repeats, report it with this message",
            ) from None

    def close(self) -> None:
        """Release pooled connections."""
        self.http.close()
