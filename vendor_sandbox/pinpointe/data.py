"""Seeded generator of a Pinpointe account: lists, segments, tags, subscribers, sends, activity.

The generator is the sandbox's ground truth: the api writes its result files from the same
records `truth` returns, so a test compares what the tap emitted with what Pinpointe "sent".

Model (vocabulary of `docs/pinpointe.md`):

* Subscriber `i` (0-based) has id `100001 + i`; every field is a pure function of `(seed, i)`
  through an integer hash, so any subscriber is rebuilt alone and in about a microsecond. It is
  on list `i % lists` and, for about 30%, on the next list too, each membership with its own
  `subscribedate` in `[start - ADDED_BEFORE_DAYS, end)`; in each segment with probability 35%,
  each tag 25%. Status: 80% active, 12% unsubscribed, 8% bounced, with the matching date.
* Sends are spread over `[start, end)` (send 0 at `start` 00:00:00 exactly). Send `k` has
  statid `5001 + k` and reaches `recipients_per_send` subscribers; each recipient's opens and
  clicks come from the send's own `random.Random(f"{seed}:send:{k}")`, drawn in recipient order,
  so a send's activity streams without being held. Some events are identical (same subscriber,
  type, second and URL); recipient 0 of every send has an identical open pair and click pair.
* `spec.end` is exclusive: no subscriber is added and no send starts on or after it, so a
  config `end_date` of `spec.end` covers everything whether a reader takes it inclusive or
  exclusive (the opens and clicks of a late send may follow it by up to three days).

Edge cases: subscriber 0's first list membership is added at `start` 00:00:00 exactly, and
subscriber 1's at `start` minus one second (outside a range starting at `start`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "CUSTOM_FIELDS",
    "STREAMS",
    "PinpointeDataSpec",
    "PinpointeDataset",
    "epoch",
    "format_time",
]

UTC = timezone.utc
DAY = 86_400
ADDED_BEFORE_DAYS = 14
STREAMS = (
    "pinpointe_lists",
    "pinpointe_segments",
    "pinpointe_tags",
    "pinpointe_newsletter_sends",
    "pinpointe_list_subscribers",
    "pinpointe_segment_subscribers",
    "pinpointe_tag_subscribers",
    "pinpointe_newsletter_activity",
)
#: (fieldid, fieldname) of the account's custom fields.
CUSTOM_FIELDS = (("2", "First Name"), ("3", "Last Name"), ("5", "City"), ("7", "Birthday"))
SUBSCRIBER_STATUSES = ("active", "inactive", "bounced", "unsubscribed")

_FIRST = ("Ana", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hiro", "Inés", "Jack")
_LAST = ("Brown", "García", "Smith", "Nguyen", "Müller", "O'Brien", "Kowalski", "Rossi")
_LOCAL = ("ana", "ben", "chloe", "david", "emma", "farid", "grace", "hiro", "ines", "jack")
_CITIES = ("Paris", "Zürich", "Austin", "Osaka", "", "Lagos", "", "Lima")
_LIST_NAMES = ("Newsletter", "Customers", "Prospects", "VIP", "Événements", "Partners")
_SEGMENT_NAMES = ("Engaged 30 days", "High value", "New this month", "Lapsed", "Mobile openers")
_TAG_NAMES = ("webinar", "trade-show", "beta", "partner-referral", "vip")
_OWNERS = (("11", "admin"), ("12", "marketing"))
_SUBJECTS = ("Weekly news", "January offers", "New arrivals", "Last chance", "Hello again")
_LINKS = (
    "https://www.example.com/",
    "https://www.example.com/sale?utm_source=pinpointe&utm_medium=email",
    "https://shop.example.com/cart",
    "https://www.example.com/events/paris",
)
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X)",
    "Microsoft Office/16.0",
    "",
)
_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def epoch(moment: date | datetime) -> int:
    """Epoch seconds of a UTC datetime, or of a date's midnight UTC."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return int(moment.timestamp())


_DAY_PREFIX: dict[int, str] = {}


def format_time(seconds: int, style: str) -> str:
    """An event time as the api writes it: `datetime` (`YYYY-MM-DD HH:MM:SS`, UTC), `epoch`,
    `zulu` (`...T...Z`) or `offset` (ISO 8601 at +02:00)."""
    if style == "datetime":  # by hand: a million-row file formats a million times
        day, rest = divmod(seconds, DAY)
        prefix = _DAY_PREFIX.get(day)
        if prefix is None:
            prefix = _DAY_PREFIX[day] = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d ")
        return f"{prefix}{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    moment = datetime.fromtimestamp(seconds, UTC)
    if style == "epoch":
        return str(seconds)
    if style == "zulu":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "offset":
        return moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    raise ValueError(f"unknown time style {style!r}")


@dataclass(frozen=True)
class PinpointeDataSpec:
    """What the seeded account holds; the same spec always gives the same files."""

    seed: int = 1
    start: date = date(2024, 1, 1)  # first send day (UTC)
    end: date = date(2024, 1, 15)  # exclusive: nothing is dated on or after it
    lists: int = 3
    segments: int = 2
    tags: int = 3
    subscribers: int = 300
    sends: int = 10
    recipients_per_send: int = 120


@dataclass(frozen=True)
class Subscriber:
    """One subscriber, fields as Pinpointe names them (dates epoch seconds, 0: never)."""

    index: int
    subscriberid: str
    emailaddress: str
    status: str
    format: str
    confirmed: str
    confirmdate: str
    unsubscribedate: str
    bouncedate: str
    ipaddress: str
    lists: tuple[tuple[str, int], ...]  # (listid, subscribedate epoch)
    segments: tuple[str, ...]
    tags: tuple[str, ...]
    customfields: tuple[str, ...]  # values in CUSTOM_FIELDS order ("" when empty)


class PinpointeDataset:
    """Ground truth and record streams for one :class:`PinpointeDataSpec`."""

    def __init__(self, spec: PinpointeDataSpec) -> None:
        if spec.end <= spec.start:
            raise ValueError("spec.end must be after spec.start")
        if min(spec.lists, spec.segments, spec.tags, spec.subscribers) < 1 or spec.sends < 0:
            raise ValueError("spec needs at least one list, segment, tag and subscriber")
        self.spec = spec
        self._start = epoch(spec.start)
        self._end = epoch(spec.end)
        self._salt = _mix(spec.seed * 1_000_003 + 17)
        self._unit_counts: dict[str, int] | None = None
        self._activity_counts: dict[str, int] = {}

    # ------------------------------------------------------------------- enumerations
    def list_ids(self) -> list[str]:
        return [str(j + 1) for j in range(self.spec.lists)]

    def segment_ids(self) -> list[str]:
        return [str(j + 1) for j in range(self.spec.segments)]

    def tag_ids(self) -> list[str]:
        return [str(j + 1) for j in range(self.spec.tags)]

    def lists(self) -> list[dict[str, str]]:
        """GetLists records."""
        counts = self._counts()
        out = []
        for j, listid in enumerate(self.list_ids()):
            owner = _OWNERS[j % len(_OWNERS)]
            out.append(
                {
                    "listid": listid,
                    "name": _LIST_NAMES[j % len(_LIST_NAMES)] + ("" if j < 6 else f" {j}"),
                    "ownerid": owner[0],
                    "ownername": owner[1],
                    "createdate": str(self._start - (400 - 20 * (j % 15)) * DAY),
                    "subscribecount": str(counts[f"list:{listid}"]),
                    "unsubscribecount": str(counts[f"list-unsub:{listid}"]),
                }
            )
        return out

    def segments(self) -> list[dict[str, str]]:
        """GetSegments records."""
        counts = self._counts()
        return [
            {
                "segmentid": segid,
                "segmentname": _SEGMENT_NAMES[j % len(_SEGMENT_NAMES)],
                "ownerid": _OWNERS[j % 2][0],
                "createdate": str(self._start - (200 - 10 * (j % 15)) * DAY + 3600),
                "contacts": str(counts[f"segment:{segid}"]),
            }
            for j, segid in enumerate(self.segment_ids())
        ]

    def tags(self) -> list[dict[str, str]]:
        """GetTags records."""
        counts = self._counts()
        return [
            {
                "tagid": tagid,
                "tagname": _TAG_NAMES[j % len(_TAG_NAMES)] + ("" if j < 5 else f"-{j}"),
                "ownerid": _OWNERS[j % 2][0],
                "createdate": str(self._start - (100 - 5 * (j % 15)) * DAY + 7200),
                "subscribecount": str(counts[f"tag:{tagid}"]),
            }
            for j, tagid in enumerate(self.tag_ids())
        ]

    def sends(self) -> list[dict[str, str]]:
        """GetNewslettersSent records, one per send, oldest first."""
        return [self.send(k) for k in range(self.spec.sends)]

    def send(self, k: int) -> dict[str, str]:
        spec = self.spec
        slot = (self._end - self._start) // max(spec.sends, 1)
        start = self._start + k * slot + (0 if k == 0 else _mix(self._salt ^ (k << 40)) % slot)
        start = min(start, self._end - 7200)
        newsletters = max(1, (spec.sends + 1) // 2)
        n = k % newsletters
        return {
            "newsletterid": str(301 + n),
            "name": f"Campaign {n + 1}",
            "subject": _SUBJECTS[n % len(_SUBJECTS)],
            "ownername": _OWNERS[n % 2][1],
            "lastupdated": str(start - 86_400 + 1800),
            "statid": str(5001 + k),
            "starttime": str(start),
            "finishtime": str(start + 600 + k * 60),
            "sentto": str(self._recipients(k)),
        }

    def send_index(self, statid: str) -> int | None:
        k = int(statid) - 5001 if statid.isdigit() else -1
        return k if 0 <= k < self.spec.sends else None

    # ------------------------------------------------------------------- subscribers
    def subscriber(self, i: int) -> Subscriber:
        spec = self.spec
        h = _mix(self._salt ^ i)
        h2 = _mix(h)
        span = self._end - self._start + ADDED_BEFORE_DAYS * DAY
        first_list = i % spec.lists
        added = self._start - ADDED_BEFORE_DAYS * DAY + h % span
        if i == 0:
            added = self._start
        elif i == 1:
            added = self._start - 1
        lists = [(str(first_list + 1), added)]
        if spec.lists > 1 and (h >> 20) % 10 < 3:
            second = (first_list + 1) % spec.lists
            lists.append((str(second + 1), self._start - ADDED_BEFORE_DAYS * DAY + h2 % span))
        roll = (h >> 8) % 100
        status = "active" if roll < 80 else ("unsubscribed" if roll < 92 else "bounced")
        last = max(at for _, at in lists)
        later = min(last + 3600 + (h2 >> 16) % (5 * DAY), self._end - 1)
        confirmed = (h >> 28) % 10 != 0
        never = "" if (h >> 32) % 5 == 0 else "0"
        first_name = _FIRST[(h >> 36) % len(_FIRST)]
        last_name = _LAST[(h >> 40) % len(_LAST)]
        birthday = "" if (h2 >> 8) % 2 else f"19{60 + (h2 >> 12) % 40}-0{1 + (h2 >> 20) % 9}-15"
        return Subscriber(
            index=i,
            subscriberid=str(100001 + i),
            emailaddress=self.email(i),
            status=status,
            format="html" if (h >> 44) % 4 else "text",
            confirmed="1" if confirmed else "0",
            confirmdate=str(added + 120) if confirmed else "0",
            unsubscribedate=str(later) if status == "unsubscribed" else never,
            bouncedate=str(later) if status == "bounced" else never,
            ipaddress="" if (h >> 48) % 7 == 0 else f"198.51.100.{1 + i % 254}",
            lists=tuple(lists),
            segments=tuple(
                str(j + 1) for j in range(spec.segments) if _mix(h ^ (j + 1)) % 100 < 35
            ),
            tags=tuple(str(j + 1) for j in range(spec.tags) if _mix(h2 ^ (j + 7)) % 100 < 25),
            customfields=(first_name, last_name, _CITIES[(h2 >> 4) % len(_CITIES)], birthday),
        )

    def email(self, i: int) -> str:
        return f"{_LOCAL[i % len(_LOCAL)]}.{i}@example.com"

    def subscriber_record(
        self,
        sub: Subscriber,
        *,
        listid: str | None = None,
        customfields: Any = "all",
        include_membership: bool = True,
    ) -> dict[str, Any]:
        """A subscriber as a JSON result file holds it (`listid`: whose subscribedate)."""
        added = dict(sub.lists)
        subscribedate = added[listid] if listid is not None else min(added.values())
        record: dict[str, Any] = {
            "subscriberid": sub.subscriberid,
            "emailaddress": sub.emailaddress,
            "status": sub.status,
            "format": sub.format,
            "confirmed": sub.confirmed,
            "subscribedate": str(subscribedate),
            "confirmdate": sub.confirmdate,
            "unsubscribedate": sub.unsubscribedate,
            "bouncedate": sub.bouncedate,
            "ipaddress": sub.ipaddress,
            "customfields": [
                {"fieldid": fid, "fieldname": name, "fieldvalue": value}
                for (fid, name), value in zip(CUSTOM_FIELDS, sub.customfields, strict=True)
                if _wanted(name, customfields)
            ],
        }
        if include_membership:
            record["membership"] = {
                "lists": [{"listid": lid, "subscribedate": str(at)} for lid, at in sub.lists],
                "segments": list(sub.segments),
                "tags": list(sub.tags),
            }
        return record

    def members(
        self,
        kind: str,
        unit: str,
        *,
        status: str = "any",
        start: int | None = None,
        end: int | None = None,
    ) -> Iterator[Subscriber]:
        """Subscribers of one list / segment / tag, by id; lists: added in `[start, end)`."""
        for i in range(self.spec.subscribers):
            sub = self.subscriber(i)
            if kind == "list":
                added = dict(sub.lists).get(unit)
                if added is None:
                    continue
                if (start is not None and added < start) or (end is not None and added >= end):
                    continue
            elif unit not in (sub.segments if kind == "segment" else sub.tags):
                continue
            if _status_matches(sub.status, status):
                yield sub

    # ------------------------------------------------------------------- activity
    def _recipients(self, k: int) -> int:
        return self.spec.recipients_per_send

    def activity(self, k: int) -> Iterator[tuple[int, int, str, int, str]]:
        """Send `k`'s events in recipient order: (subscriber index, recipient ordinal,
        "open"/"click", epoch second, link URL or "")."""
        spec = self.spec
        rng = random.Random(f"{spec.seed}:send:{k}")
        r, randrange = rng.random, rng.randrange
        start = int(self.send(k)["starttime"])
        offset = (k * 37) % spec.subscribers
        for n in range(self._recipients(k)):
            i = (offset + n) % spec.subscribers
            if n > 0 and r() >= 0.6:
                continue
            t = start + 60 + randrange(3 * DAY)
            opens = 1 + randrange(3)
            for _ in range(opens):
                yield i, n, "open", t, ""
                if n == 0 or r() < 0.04:
                    yield i, n, "open", t, ""  # identical event
                t += 1 + randrange(7200)
            if n == 0 or r() < 0.45:
                for _ in range(1 + randrange(2)):
                    url = _LINKS[randrange(len(_LINKS))]
                    yield i, n, "click", t, url
                    if n == 0 or r() < 0.04:
                        yield i, n, "click", t, url
                    t += 1 + randrange(600)

    def activity_count(self, k: int, start: int | None = None, end: int | None = None) -> int:
        """Events of send `k` (in `[start, end)` when given), without building records."""
        key = f"{k}:{start}:{end}"
        if key not in self._activity_counts:
            self._activity_counts[key] = sum(
                1
                for _, _, _, t, _ in self.activity(k)
                if (start is None or t >= start) and (end is None or t < end)
            )
        return self._activity_counts[key]

    def flat_event(
        self, i: int, kind: str, t: int, url: str, time_style: str = "datetime"
    ) -> dict[str, str]:
        """One event as a flat activity record."""
        h = _mix(self._salt ^ (i << 20) ^ t)
        record = {
            "subscriberid": str(100001 + i),
            "emailaddress": self.email(i),
            "eventtype": kind,
            "eventtime": format_time(t, time_style),
        }
        if kind == "click":
            record["linkurl"] = url
        record["ipaddress"] = f"203.0.113.{1 + h % 250}"
        record["useragent"] = _AGENTS[(h >> 8) % len(_AGENTS)]
        return record

    # ------------------------------------------------------------------- truth
    def counts_by_unit(self) -> dict[str, int]:
        """Members per unit (`list:<id>`, `segment:<id>`, `tag:<id>`) with any status."""
        return {k: v for k, v in self._counts().items() if not k.startswith("list-unsub")}

    def _counts(self) -> dict[str, int]:
        if self._unit_counts is None:
            counts: dict[str, int] = {}
            for i in range(self.spec.subscribers):
                sub = self.subscriber(i)
                for listid, _ in sub.lists:
                    counts[f"list:{listid}"] = counts.get(f"list:{listid}", 0) + 1
                    if sub.status == "unsubscribed":
                        key = f"list-unsub:{listid}"
                        counts[key] = counts.get(key, 0) + 1
                for segid in sub.segments:
                    counts[f"segment:{segid}"] = counts.get(f"segment:{segid}", 0) + 1
                for tagid in sub.tags:
                    counts[f"tag:{tagid}"] = counts.get(f"tag:{tagid}", 0) + 1
            for kind, ids in (
                ("list", self.list_ids()),
                ("list-unsub", self.list_ids()),
                ("segment", self.segment_ids()),
                ("tag", self.tag_ids()),
            ):
                for unit in ids:
                    counts.setdefault(f"{kind}:{unit}", 0)
            self._unit_counts = counts
        return self._unit_counts

    def sends_in(self, start: int, end: int) -> list[int]:
        """Indexes of the sends whose starttime is in `[start, end)` (epoch seconds)."""
        return [k for k in range(self.spec.sends) if start <= int(self.send(k)["starttime"]) < end]

    def truth(
        self, start: date | None = None, end: date | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Every raw record a sync of `[start, end)` must deliver (default: the spec's range).

        Subscriber rows carry their unit (`listid`, `segmentid`, `tagid`) next to the record
        as the JSON result file holds it (every custom field, membership included); list
        subscribers only those added in the range. Activity rows are flat records (`eventtime`
        as `YYYY-MM-DD HH:MM:SS` UTC) with `statid`, of the sends started in the range.
        """
        lo, hi = epoch(start or self.spec.start), epoch(end or self.spec.end)
        out: dict[str, list[dict[str, Any]]] = {
            "pinpointe_lists": self.lists(),
            "pinpointe_segments": self.segments(),
            "pinpointe_tags": self.tags(),
            "pinpointe_newsletter_sends": [self.send(k) for k in self.sends_in(lo, hi)],
            "pinpointe_list_subscribers": [],
            "pinpointe_segment_subscribers": [],
            "pinpointe_tag_subscribers": [],
            "pinpointe_newsletter_activity": [],
        }
        for listid in self.list_ids():
            for sub in self.members("list", listid, start=lo, end=hi):
                row = self.subscriber_record(sub, listid=listid)
                out["pinpointe_list_subscribers"].append({"listid": listid, **row})
        for kind, key, ids in (
            ("segment", "segmentid", self.segment_ids()),
            ("tag", "tagid", self.tag_ids()),
        ):
            for unit in ids:
                for sub in self.members(kind, unit):
                    row = self.subscriber_record(sub)
                    out[f"pinpointe_{kind}_subscribers"].append({key: unit, **row})
        for k in self.sends_in(lo, hi):
            statid = str(5001 + k)
            for i, _, kind, t, url in self.activity(k):
                out["pinpointe_newsletter_activity"].append(
                    {"statid": statid, **self.flat_event(i, kind, t, url)}
                )
        return out

    def counts(self, start: date | None = None, end: date | None = None) -> dict[str, int]:
        """`len` of every `truth` list, computed without building the records."""
        lo, hi = epoch(start or self.spec.start), epoch(end or self.spec.end)
        units = self._counts()
        sends = self.sends_in(lo, hi)
        listed = sum(
            sum(1 for _ in self.members("list", listid, start=lo, end=hi))
            for listid in self.list_ids()
        )
        return {
            "pinpointe_lists": self.spec.lists,
            "pinpointe_segments": self.spec.segments,
            "pinpointe_tags": self.spec.tags,
            "pinpointe_newsletter_sends": len(sends),
            "pinpointe_list_subscribers": listed,
            "pinpointe_segment_subscribers": sum(units[f"segment:{s}"] for s in self.segment_ids()),
            "pinpointe_tag_subscribers": sum(units[f"tag:{t}"] for t in self.tag_ids()),
            "pinpointe_newsletter_activity": sum(self.activity_count(k) for k in sends),
        }


def _wanted(name: str, customfields: Any) -> bool:
    if customfields == "all":
        return True
    return isinstance(customfields, list) and name in customfields


def _status_matches(status: str, wanted: str) -> bool:
    if wanted == "any":
        return True
    if wanted == "inactive":
        return status != "active"
    return status == wanted
