"""ExactTarget tracking XML to schema-shaped records, in one streaming pass.

The file format and the readings we chose where the vendor page is silent are in
docs/exacttarget.md. What this module guarantees:

* memory stays flat: each `<subscriber>` is turned into records when it closes, then cleared and
  detached, and so are jobs and accounts;
* records are JSON-ready and shaped exactly like the stream schemas (every property present), so the
  SDK's type conformance can be switched off;
* events without a vendor id get a deterministic key: member, job, subscriber, list, event time and
  the event's ordinal among events of the same kind with the same time in that subscriber node,
  so re-reading a day (lookback, an unfinished day) yields the very same keys;
* anything malformed (an unreadable date, a non-numeric count, an event without a time) raises
  `CorruptFileError` naming the member, job and subscriber; nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any
from xml.etree.ElementTree import Element

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.formats.xml import iter_xml_items
from tap_emailtracking.limits import Limits
from tap_emailtracking.timestamps import LocalTimeFormatter

VENDOR = "ExactTarget"

KINDS = (
    "jobs",
    "job_links",
    "job_lists",
    "subscribers",
    "opens",
    "clicks",
    "bounces",
    "unsubscribes",
    "conversions",
    "survey_responses",
)

# Event container element (lower-case) -> (record kind, name of its time field).
EVENT_CONTAINERS: dict[str, tuple[str, str]] = {
    "opens": ("opens", "opened_at"),
    "clicks": ("clicks", "clicked_at"),
    "undeliverable": ("bounces", "bounced_at"),
    "unsubscribe": ("unsubscribes", "unsubscribed_at"),
    "surveyresponses": ("survey_responses", "responded_at"),
    "conversions": ("conversions", "converted_at"),
}

# Per event kind: vendor field (lower-case) -> record property. Unlisted fields go to `extra`.
EVENT_FIELDS: dict[str, dict[str, str]] = {
    "opens": {},
    "clicks": {"url": "url", "linkuri": "url", "linkname": "link_name", "name": "link_name"},
    "bounces": {"bouncetype": "bounce_type", "smtpcode": "smtp_code", "reason": "reason"},
    "unsubscribes": {"reason": "reason"},
    "survey_responses": {"question": "question", "answer": "answer"},
    "conversions": {"linkid": "link_id", "linkalias": "link_alias", "linkuri": "link_uri"},
}
EVENT_TEMPLATES: dict[str, dict[str, Any]] = {
    "opens": {},
    "clicks": {"url": None, "link_name": None, "extra": None},
    "bounces": {"bounce_type": None, "smtp_code": None, "reason": None, "extra": None},
    "unsubscribes": {"reason": None, "extra": None},
    "survey_responses": {"question": None, "answer": None, "extra": None},
    "conversions": {
        "link_id": None,
        "link_alias": None,
        "link_uri": None,
        "data_set": None,
        "extra": None,
    },
}

SUBSCRIBER_FIELDS = {
    "subscriberid": "subscriber_id",
    "listid": "list_id",
    "firstname": "first_name",
    "lastname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "type": "email_type",
    "status": "status",
}

SUMMARY_TEXT = {
    "emailname": "email_name",
    "emailsubject": "email_subject",
    "fromname": "from_name",
    "fromemail": "from_email",
    "additional": "additional",
}
SUMMARY_COUNTS = {
    "sentcount": "sent_count",
    "deliveredcount": "delivered_count",
    "undeliveredcount": "undelivered_count",
    "unsubscribedcount": "unsubscribed_count",
    "opencount": "open_count",
    "uniqueclickcount": "unique_click_count",
}
FTAF_COUNTS = {
    "email_forwarders": "ftaf_email_forwarders",
    "new_recipients": "ftaf_new_recipients",
    "new_subscribers": "ftaf_new_subscribers",
}
JOB_TEMPLATE: dict[str, Any] = {
    **dict.fromkeys(SUMMARY_TEXT.values()),
    "is_multipart": None,
    "delivered_at": None,
    **dict.fromkeys(SUMMARY_COUNTS.values()),
    **dict.fromkeys(FTAF_COUNTS.values()),
    "conversion_summary": None,
    "extra": None,
}
# Leaves whose text sets the context, and elements whose end closes it.
_LEAF_TAGS = frozenset({"jobID", "memberID"})
_END_TAGS = frozenset({"emailSummary", "job", "account"})
Record = tuple[str, dict[str, Any]]
# Every `mm:ss` from 00:00 to 59:59: a time whose clock ends so needs no further checking.
_MINUTE_SECOND = frozenset(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))
TRUE_WORDS = frozenset({"true", "1", "yes", "y"})
FALSE_WORDS = frozenset({"false", "0", "no", "n"})


def _text(element: Element) -> str | None:
    """Element text with surrounding blanks removed; empty becomes None."""
    text = element.text
    if text is None:
        return None
    text = text.strip()
    return text or None


def _leaves(element: Element) -> dict[str, Any]:
    """A nested element as a plain dict (leaf text, or nested dicts)."""
    return {child.tag: (_leaves(child) if len(child) else _text(child)) for child in element}


class ExportParser:
    """Parse one tracking XML document into `(kind, record)` pairs for the wanted kinds."""

    def __init__(
        self,
        formatter: LocalTimeFormatter,
        *,
        stream: str | None,
        subject: str,
        limits: Limits | None = None,
    ) -> None:
        self._formatter = formatter
        self._stream = stream
        self._subject = subject
        self._limits = limits or Limits()
        self._days: dict[str, tuple[int, int, int]] = {}
        self._hours: dict[tuple[tuple[int, int, int], int], tuple[str, str]] = {}
        self._heads: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._event_tags: dict[str, tuple[str, str]] = {}
        self._field_tags: dict[str, str] = {}
        self._attribute_tags: dict[str, str] = {}
        self._date_tags: dict[str, bool] = {}
        self.member_id: str | None = None
        self.job_id: str | None = None

    # -- errors -------------------------------------------------------------------------------

    def _corrupt(self, what: str) -> CorruptFileError:
        where = f"member {self.member_id}, job {self.job_id}"
        return CorruptFileError(
            f"{what} ({where})",
            vendor=VENDOR,
            stream=self._stream,
            subject=self._subject,
            action="report the file to ExactTarget support; state was not advanced, so a re-run "
            "after the vendor fixes the export loses nothing",
        )

    # -- values -------------------------------------------------------------------------------

    def timestamp(self, raw: str) -> str:
        """`1/18/2008 9:25:00 AM` (account-local) to ISO 8601 with offset.

        Hot: called once per event. A time of the usual shape (`<day> <h>:<mm>:<ss> <AM|PM>`)
        whose day, hour and meridiem were seen before is three partitions, two lookups and an
        f-string; anything else goes through `_parse_timestamp`, which checks it in full.
        """
        day_s, _, rest = raw.partition(" ")
        clock, _, meridiem = rest.partition(" ")
        hour_s, _, minute_second = clock.partition(":")
        if minute_second not in _MINUTE_SECOND:
            return self._parse_timestamp(raw, None)
        key = (day_s, hour_s, meridiem)
        head = self._heads.get(key)
        if head is None:
            return self._parse_timestamp(raw, key)
        return f"{head[0]}{minute_second}{head[1]}"

    def _parse_timestamp(self, raw: str, key: tuple[str, str, str] | None) -> str:
        """`timestamp` in full: any spacing, hour only, 24-hour clock; remembers `key`'s head.

        The day and the (day, hour) prefix with its UTC offset are cached, so a typical call is
        two splits, two int() calls and one f-string.
        """
        try:
            parts = raw.split()
            day = self._days.get(parts[0])
            if day is None:
                month_s, day_s, year_s = parts[0].split("/")
                day = (int(year_s), int(month_s), int(day_s))
                self._days[parts[0]] = day
            hour = minute = second = 0
            if len(parts) > 1:
                pieces = parts[1].split(":")
                hour = int(pieces[0])
                minute = int(pieces[1]) if len(pieces) > 1 else 0
                second = int(pieces[2]) if len(pieces) > 2 else 0
                if len(parts) > 2:
                    meridiem = parts[2].upper()
                    if len(parts) > 3 or meridiem not in ("AM", "PM") or not 1 <= hour <= 12:
                        raise ValueError("bad 12-hour time")
                    hour = hour % 12 + (12 if meridiem == "PM" else 0)
            if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
                raise ValueError("time out of range")
            head = self._hours.get((day, hour))
            if head is None:
                full = self._formatter.iso(day[0], day[1], day[2], hour, 0, 0)
                head = (full[:14], full[19:])  # "2008-01-18T09:" and "-06:00"
                if len(self._hours) > 200_000:
                    self._hours.clear()
                    self._heads.clear()
                self._hours[(day, hour)] = head
        except (ValueError, IndexError):
            raise self._corrupt(f"unreadable date {raw!r}") from None
        if key is not None:
            # `raw` is `<day> <hour>:<mm>:<ss>[ <meridiem>]`: the same key is the same head.
            self._heads[key] = head
        return f"{head[0]}{minute:02d}:{second:02d}{head[1]}"

    def integer(self, element: Element) -> int | None:
        text = _text(element)
        if text is None:
            return None
        try:
            return int(text.replace(",", ""))
        except ValueError:
            raise self._corrupt(f"<{element.tag}> is not a whole number: {text!r}") from None

    def percent(self, element: Element) -> float | None:
        text = _text(element)
        if text is None:
            return None
        try:
            return float(text.rstrip("%").replace(",", ""))
        except ValueError:
            raise self._corrupt(f"<{element.tag}> is not a percentage: {text!r}") from None

    def boolean(self, element: Element) -> bool | None:
        text = _text(element)
        if text is None:
            return None
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise self._corrupt(f"<{element.tag}> is not true/false: {text!r}")

    # -- document -----------------------------------------------------------------------------

    def parse(self, stream: IO[bytes], wanted: set[str]) -> Iterator[list[Record]]:
        """Yield `(kind, record)` pairs of the wanted kinds in document order, a list per chunk.

        Lists rather than single pairs: a record then passes through no generator of its own.
        """
        want_job_level = bool(wanted & {"jobs", "job_links", "job_lists"})
        want_subscriber_level = bool(wanted - {"jobs", "job_links", "job_lists"})
        capture = frozenset(
            (["subscriber"] if want_subscriber_level else [])
            + (["emailSummary"] if want_job_level else [])
        )
        summary_seen = False
        for items in iter_xml_items(
            stream,
            capture=capture,
            leaves=_LEAF_TAGS,
            ends=_END_TAGS,
            vendor=VENDOR,
            stream_name=self._stream,
            subject=self._subject,
            limits=self._limits,
        ):
            out: list[Record] = []
            for what, tag, value in items:
                if what == "tree":
                    if tag == "subscriber":
                        self._subscriber(value, wanted, out)
                    else:
                        summary_seen = True
                        self._summary(value, wanted, out)
                elif tag == "jobID":
                    self.job_id = value.strip() or None
                    summary_seen = False
                elif tag == "memberID":
                    self.member_id = value.strip() or None
                elif tag == "emailSummary":
                    summary_seen = True
                elif tag == "job":
                    if not summary_seen and "jobs" in wanted and self.job_id is not None:
                        out.append(("jobs", self._job_record({})))
                    self.job_id = None
                elif tag == "account":
                    self.member_id = None
            if out:
                yield out

    # -- jobs ---------------------------------------------------------------------------------

    def _identity(self) -> tuple[str, str]:
        if self.member_id is None or self.job_id is None:
            raise self._corrupt(
                "a job or subscriber appears outside an account with a memberID/jobID"
            )
        return self.member_id, self.job_id

    def _job_record(self, fields: dict[str, Any]) -> dict[str, Any]:
        member_id, job_id = self._identity()
        record: dict[str, Any] = {"member_id": member_id, "job_id": job_id}
        record.update(JOB_TEMPLATE)
        record.update(fields)
        return record

    def _summary(self, summary: Element, wanted: set[str], out: list[Record]) -> None:
        member_id, job_id = self._identity()
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for child in summary:
            name = child.tag.lower()
            if name in SUMMARY_TEXT:
                fields[SUMMARY_TEXT[name]] = _text(child)
            elif name in SUMMARY_COUNTS:
                fields[SUMMARY_COUNTS[name]] = self.integer(child)
            elif name == "ismultipart":
                fields["is_multipart"] = self.boolean(child)
            elif name == "deliveredtime":
                text = _text(child)
                fields["delivered_at"] = None if text is None else self.timestamp(text)
            elif name == "ftaf_summary":
                for item in child:
                    key = FTAF_COUNTS.get(item.tag.lower())
                    if key is None:
                        extra[f"FTAF_summary.{item.tag}"] = _text(item)
                    else:
                        fields[key] = self.integer(item)
            elif name == "conversion_summary":
                fields["conversion_summary"] = _leaves(child) or None
            elif name == "lists":
                if "job_lists" in wanted:
                    self._lists(child, member_id, job_id, out)
            elif name == "email_links":
                if "job_links" in wanted:
                    self._links(child, member_id, job_id, out)
            else:
                extra[child.tag] = _leaves(child) if len(child) else _text(child)
        if extra:
            fields["extra"] = extra
        if "jobs" in wanted:
            out.append(("jobs", self._job_record(fields)))

    def _lists(self, lists: Element, member_id: str, job_id: str, out: list[Record]) -> None:
        for item in lists:
            values = {child.tag.lower(): _text(child) for child in item}
            record = {
                "member_id": member_id,
                "job_id": job_id,
                "list_id": values.get("list_id") or values.get("listid") or "",
                "list_name": values.get("list_name") or values.get("listname"),
            }
            out.append(("job_lists", record))

    def _links(self, links: Element, member_id: str, job_id: str, out: list[Record]) -> None:
        seen: dict[tuple[str, str], int] = {}
        for item in links:
            by_name = {child.tag.lower(): child for child in item}
            url_el, name_el = by_name.get("url"), by_name.get("name")
            url = (_text(url_el) if url_el is not None else None) or ""
            name = (_text(name_el) if name_el is not None else None) or ""
            ordinal = seen.get((url, name), 0)
            seen[(url, name)] = ordinal + 1
            clicks_el, pct_el, ctr_el = (
                by_name.get("click_throughs"),
                by_name.get("percent"),
                by_name.get("net_ctr"),
            )
            out.append(
                (
                    "job_links",
                    {
                        "member_id": member_id,
                        "job_id": job_id,
                        "url": url,
                        "name": name,
                        "ordinal": ordinal,
                        "click_throughs": None if clicks_el is None else self.integer(clicks_el),
                        "percent": None if pct_el is None else self.percent(pct_el),
                        "net_ctr": None if ctr_el is None else self.percent(ctr_el),
                    },
                )
            )

    # -- subscribers and their events ---------------------------------------------------------

    def _classify(self, tag: str) -> None:
        """Learn what a subscriber child tag is (event container, field or attribute), once."""
        name = tag.lower()
        container = EVENT_CONTAINERS.get(name)
        if container is not None:
            self._event_tags[tag] = container
        elif name in SUBSCRIBER_FIELDS:
            self._field_tags[tag] = SUBSCRIBER_FIELDS[name]
        else:
            self._attribute_tags[tag] = tag.replace("__", " ")

    def _subscriber(self, node: Element, wanted: set[str], out: list[Record]) -> None:
        """One subscriber node: its subscriber record and its events. The hottest code here."""
        member_id, job_id = self._identity()
        fields: dict[str, Any] = {}
        attributes: dict[str, str | None] = {}
        containers: list[tuple[Element, str, str]] = []
        event_tags, field_tags, attribute_tags = (
            self._event_tags,
            self._field_tags,
            self._attribute_tags,
        )
        for child in node:
            tag = child.tag
            event = event_tags.get(tag)
            if event is not None:
                if event[0] in wanted and len(child):
                    containers.append((child, event[0], event[1]))
                continue
            text = child.text
            if text is not None:
                text = text.strip() or None
            name = field_tags.get(tag)
            if name is not None:
                fields[name] = text
                continue
            name = attribute_tags.get(tag)
            if name is None:
                self._classify(tag)
                self._subscriber_child(tag, child, text, fields, attributes, containers, wanted)
            else:
                attributes[name] = str(_leaves(child)) if len(child) else text
        subscriber_id = fields.get("subscriber_id")
        if subscriber_id is None:
            raise self._corrupt("a <subscriber> has no <subscriberID>")
        list_id = fields.get("list_id") or ""
        if "subscribers" in wanted:
            out.append(
                (
                    "subscribers",
                    {
                        "member_id": member_id,
                        "job_id": job_id,
                        "subscriber_id": subscriber_id,
                        "list_id": list_id,
                        "first_name": fields.get("first_name"),
                        "last_name": fields.get("last_name"),
                        "email": fields.get("email"),
                        "email_type": fields.get("email_type"),
                        "status": fields.get("status"),
                        "attributes": attributes,
                    },
                )
            )
        date_tags = self._date_tags
        for container, kind, time_field in containers:
            ordinals: dict[str, int] = {}
            template = EVENT_TEMPLATES[kind]
            leaf_tag = container[0].tag
            times: list[str | None] | None = []
            for leaf in container:
                if leaf.tag != leaf_tag or len(leaf):
                    times = None
                    break
                times.append(leaf.text)  # type: ignore[union-attr]
            is_date = date_tags.get(leaf_tag)
            if is_date is None:
                is_date = date_tags[leaf_tag] = leaf_tag.lower().endswith("date")
            if times is not None and is_date:
                # The common shape (<opens><opendate/>...): each leaf is one event's time.
                for raw_time in times:
                    raw = raw_time.strip() if raw_time is not None else ""
                    if not raw:
                        raise self._corrupt(
                            f"a {kind} event of subscriber {subscriber_id} has no date"
                        )
                    at = self.timestamp(raw)
                    ordinal = ordinals.get(at, 0)
                    ordinals[at] = ordinal + 1
                    record = {
                        "member_id": member_id,
                        "job_id": job_id,
                        "subscriber_id": subscriber_id,
                        "list_id": list_id,
                        time_field: at,
                        "ordinal": ordinal,
                    }
                    if template:
                        record.update(template)
                    out.append((kind, record))
                continue
            base = {
                "member_id": member_id,
                "job_id": job_id,
                "subscriber_id": subscriber_id,
                "list_id": list_id,
            }
            for event_fields in self._events(container):
                out.append(
                    (kind, self._event_record(kind, time_field, event_fields, base, ordinals))
                )

    def _subscriber_child(
        self,
        tag: str,
        child: Element,
        text: str | None,
        fields: dict[str, Any],
        attributes: dict[str, str | None],
        containers: list[tuple[Element, str, str]],
        wanted: set[str],
    ) -> None:
        """Place a child whose tag was seen for the first time (just classified)."""
        event = self._event_tags.get(tag)
        if event is not None:
            if event[0] in wanted and len(child):
                containers.append((child, event[0], event[1]))
        elif tag in self._field_tags:
            fields[self._field_tags[tag]] = text
        else:
            attributes[self._attribute_tags[tag]] = str(_leaves(child)) if len(child) else text

    @staticmethod
    def _events(container: Element) -> Iterator[list[Element]]:
        """The events in a container, each as its list of field elements (see module docs)."""
        children = list(container)
        if not children:
            return
        if all(len(child) for child in children):
            for child in children:
                yield list(child)
            return
        if all(not len(child) for child in children) and len({c.tag for c in children}) == 1:
            for child in children:
                yield [child]
            return
        yield children

    def _event_record(
        self,
        kind: str,
        time_field: str,
        event: list[Element],
        base: dict[str, str],
        ordinals: dict[str, int],
    ) -> dict[str, Any]:
        when: str | None = None
        record: dict[str, Any] = dict(base)
        record.update(EVENT_TEMPLATES[kind])
        mapping = EVENT_FIELDS[kind]
        extra: dict[str, Any] = {}
        for field in event:
            name = field.tag.lower()
            if when is None and name.endswith("date"):
                when = _text(field)
                continue
            target = mapping.get(name)
            if target is not None:
                record[target] = _text(field)
            elif name == "data_set" and kind == "conversions":
                record["data_set"] = [_data_item(item) for item in field]
            else:
                extra[field.tag] = _leaves(field) if len(field) else _text(field)
        if when is None:
            raise self._corrupt(f"a {kind} event of subscriber {base['subscriber_id']} has no date")
        at = self.timestamp(when)
        ordinal = ordinals.get(at, 0)
        ordinals[at] = ordinal + 1
        record[time_field] = at
        record["ordinal"] = ordinal
        if extra:
            record["extra"] = extra
        return record


def _data_item(item: Element) -> dict[str, Any]:
    """One `<data amt=".." unit=".." accumulate=".."/>` of a conversion's data_set."""
    attributes = dict(item.attrib)
    amount_text = attributes.pop("amt", None)
    unit = attributes.pop("unit", None)
    accumulate_text = attributes.pop("accumulate", None)
    amount: float | None
    try:
        amount = float(amount_text) if amount_text else None
    except ValueError:
        amount = None
        attributes["amt"] = amount_text  # type: ignore[assignment]
    accumulate = None
    if accumulate_text is not None:
        lowered = accumulate_text.strip().lower()
        accumulate = True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else None
    return {
        "amount": amount,
        "unit": unit,
        "accumulate": accumulate,
        "attributes": attributes or None,
    }
