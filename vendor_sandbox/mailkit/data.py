"""Seeded generator of a Mailkit account: campaigns, sends and the three raw report functions.

The generator is the sandbox's ground truth: the api answers from the same row functions that
`truth` uses, so a test compares what the tap emitted with what Mailkit "sent".

Model (raw vocabulary of `docs/mailkit.md`):

* Campaign `c` (0-based) has `ID_MESSAGE` `12345 + 7c` and `sends_per_campaign` sends; send `s`
  (0-based over all campaigns, campaign `s // sends_per_campaign`) has `ID_SEND`
  `123456 + 13s` and starts in `[start, end)` (send 0 at `start` 09:00 local). Each send reaches
  `recipients_per_send` recipients, so message `m` (0-based) is recipient `m % recipients` of
  send `m // recipients`: one raw.messages row per message, in message order.
* Lazy and index-based: a row is a pure function of `(seed, function, index)`, so a page of any
  size is built alone and `counts` is arithmetic. Ids ascend with gaps:
  `id = base + 3 * index + hash(index) % 3` (bases: bounces 1, messages 1_200_000_000,
  responses 50_000_000), so the first index at or past a start id is found in O(1).
* What a message leads to follows a per-seed pattern over `m % 97`: about 5% of the positions
  bounce (one raw.bounces row, no responses); the others get 0-3 opens, then 0-2 clicks (with
  `ID_url`, `link_url`), and about 4% an unsubscribe answer, in that order, dated after the
  send. Position 0 (the first message of every send) has two opens, a click and an answer.
  Counting any of them over a range of messages is closed-form, so `mailkit.report.campaign`
  counts are exact and cheap at millions of rows. The default spec has 94 bounces, 1,800
  messages and 2,327 responses.
* Keys and values [I where the doc is silent]: raw.bounces upper case, every value a string
  (the docs' sample), `ID_SEND_MESSGE` sic; raw.messages mixed case, ids strings except
  `ID_template` (a number), `custom_1` ... `custom_25` always present (mostly ""), plus
  `first_name, last_name, city, preview_url`; raw.responses mixed case, `ID_log` and
  `ID_send_message` numbers, `ID_url` a number for clicks and null otherwise, other ids
  strings, text fields "" when empty; `type` is `open`, `click` or `unsubscribe`.
  campaigns.list `ID_MESSAGE` a number, `USER_LIST` a list of strings; report.campaign
  `ID_SEND` a string, counts numbers, rates strings (`"31.21"`).
* Dates are `YYYY-MM-DD HH:MM:SS` wall-clock time in `spec.timezone` (default Europe/Prague).
* Growth (rows added while a sync runs): `grow(function, k)` appends `k` rows to the end of that
  function's id range. Grown rows continue the same index sequence and belong to the last send
  of the last campaign; a grown bounce or response may refer to a message (`ID_send_message`)
  past the end of raw.messages unless that grew too. `grown` says how many each function has;
  `truth`/`counts` take a `grown` snapshot (`dict(dataset.grown)` taken then; `{}`: none) to
  say which rows existed at any earlier moment.
  Campaign and send rows ignore growth (their counts are of the seeded data).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "BOUNCES",
    "FUNCTIONS",
    "ID_KEYS",
    "MESSAGES",
    "RESPONSES",
    "STREAMS",
    "MailkitDataSpec",
    "MailkitDataset",
    "as_int",
]

BOUNCES = "mailkit.report.raw.bounces"
MESSAGES = "mailkit.report.raw.messages"
RESPONSES = "mailkit.report.raw.responses"
FUNCTIONS = (BOUNCES, MESSAGES, RESPONSES)
#: function -> (start-id parameter, id key in the rows)
ID_KEYS = {
    BOUNCES: ("ID_undelivered_log", "ID_UNDELIVERED_LOG"),
    MESSAGES: ("ID_send_message", "ID_send_message"),
    RESPONSES: ("ID_log", "ID_log"),
}
STREAMS = (
    "mailkit_campaigns",
    "mailkit_sends",
    "mailkit_bounces",
    "mailkit_messages",
    "mailkit_responses",
)
_RAW_STREAMS = {
    BOUNCES: "mailkit_bounces",
    MESSAGES: "mailkit_messages",
    RESPONSES: "mailkit_responses",
}
_ID_BASE = {BOUNCES: 1, MESSAGES: 1_200_000_000, RESPONSES: 50_000_000}
_PERIOD = 97
_MASK = (1 << 64) - 1
_DAY = 86_400
_SECONDS = tuple(f"{n:02d}" for n in range(60))
_CUSTOM_EMPTY = {f"custom_{n}": "" for n in range(3, 26)}

_LOCAL = ("jana", "petr", "eva", "tomas", "lucie", "martin", "katerina", "jiri", "tereza", "pavel")
_FIRST = ("Jana", "Petr", "Eva", "Tomáš", "Lucie", "Martin", "Kateřina", "Jiří", "Tereza", "Pavel")
_LAST = ("Nováková", "Svoboda", "Dvořáková", "Černý", "Procházková", "Kučera", "Veselá", "Horák")
_DOMAINS = ("example.cz", "example.com", "seznam.example.cz", "post.example.sk", "mail.example.de")
_CITIES = ("Praha", "Brno", "Ostrava", "Plzeň", "", "Bratislava", "Wien", "")
_NAMES = ("January newsletter", "Winter sale", "New arrivals", "Product tips", "Loyalty club")
_SUBJECTS = ("Novinky v lednu", "Zimní výprodej -30 %", "Nové zboží", "Tipy a triky", "Klub")
_LINKS = (
    ("https://www.example.cz/", "Domů", "Example shop"),
    ("https://www.example.cz/vyprodej?utm_source=mailkit&utm_medium=email", "Výprodej", "Sale"),
    ("https://shop.example.cz/kosik", "Košík", "Cart"),
    ("https://www.example.cz/blog/tipy", "Přečíst", "Tips"),
)
_ANSWERS = ("Příliš mnoho e-mailů", "Nemám zájem", "")
_BOUNCE_KINDS = (
    ("5.1.1", "smtp;550 5.1.1 sorry, no such mailbox here", "bad-mailbox", "dns; mx1.seznam.cz",
     "permanent"),
    ("4.2.2", "smtp; 552 4.2.2 User has full mailbox.", "quota-issues", "dns; mx.example.com",
     "temporary"),
    ("5.2.2", "X-Postfix; Mailbox is full", "quota-issues", "", "permanent"),
    ("4.4.1", "X-Postfix; connect to mx.example.sk timed out", "no-answer-from-host", "",
     "temporary"),
)  # fmt: skip
# (user_agent, browser, major, minor, browser_type, os, os_version, device)
_AGENTS = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0", "Chrome", "120", "0", "browser",
     "Windows", "10", "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X)", "Mobile Safari", "17", "2",
     "mobile-browser", "iOS", "17.2", "smartphone"),
    ("Microsoft Office/16.0 (Microsoft Outlook 16.0)", "Outlook", "16", "0", "email-client",
     "Windows", "11", "desktop"),
    ("", "", "", "", "", "", "", ""),
)  # fmt: skip
# (continent, country, code3, code, region, region_code, city, org)
_PLACES = (
    ("EU", "Czechia", "CZE", "CZ", "Hlavní město Praha", "10", "Praha", "O2 Czech Republic"),
    ("EU", "Czechia", "CZE", "CZ", "Jihomoravský kraj", "64", "Brno", "Vodafone CZ"),
    ("EU", "Slovakia", "SVK", "SK", "Bratislavský kraj", "BL", "Bratislava", "Slovak Telekom"),
    ("", "", "", "", "", "", "", ""),
)


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _cheap(x: int) -> int:
    """A multiplicative hash (one product): well spread in its upper bits, cheap enough to call a
    few times per row of a page of 25,000."""
    return (x * 0x9E3779B97F4A7C15) >> 24 & 0xFFFFFFFFFFFF


@dataclass(frozen=True)
class MailkitDataSpec:
    """What the seeded account holds; the same spec always gives the same rows."""

    seed: int = 1
    start: date = date(2024, 1, 1)  # first send day (local)
    end: date = date(2024, 2, 1)  # exclusive: no send starts on or after it
    campaigns: int = 3
    sends_per_campaign: int = 4
    recipients_per_send: int = 150
    timezone: str = "Europe/Prague"

    @property
    def sends(self) -> int:
        return self.campaigns * self.sends_per_campaign

    @property
    def messages(self) -> int:
        return self.sends * self.recipients_per_send


@dataclass(frozen=True)
class _Pattern:
    """What each message position `m % 97` leads to, with prefix sums for O(1) counting."""

    kinds: tuple[tuple[str, ...], ...]  # response types per position ("" tuple if bounced)
    bounced: tuple[bool, ...]
    bounce_positions: tuple[int, ...]
    prefix: dict[str, tuple[int, ...]]  # name -> prefix sums over positions (len 98)

    @classmethod
    def make(cls, seed: int) -> _Pattern:
        rng = random.Random(f"{seed}:mailkit:pattern")
        bounce_positions = tuple(sorted(rng.sample(range(1, _PERIOD), 5)))
        kinds: list[tuple[str, ...]] = []
        for p in range(_PERIOD):
            if p in bounce_positions:
                kinds.append(())
                continue
            opens = rng.choices((0, 1, 2, 3), (35, 35, 20, 10))[0]
            clicks = rng.choices((0, 1, 2), (55, 30, 15))[0] if opens else 0
            unsub = opens > 0 and rng.random() < 0.04
            kinds.append(("open",) * opens + ("click",) * clicks + ("unsubscribe",) * unsub)
        # Position 0 (the first message of every send) has every kind, so small sends do too.
        kinds[0] = ("open", "open", "click", "unsubscribe")
        bounced = tuple(p in bounce_positions for p in range(_PERIOD))
        columns = {
            "responses": [len(k) for k in kinds],
            "bounces": [int(b) for b in bounced],
            "open": [k.count("open") for k in kinds],
            "click": [k.count("click") for k in kinds],
            "unsubscribe": [k.count("unsubscribe") for k in kinds],
            "open_u": [int("open" in k) for k in kinds],
            "click_u": [int("click" in k) for k in kinds],
        }
        prefix = {}
        for name, values in columns.items():
            sums = [0]
            for v in values:
                sums.append(sums[-1] + v)
            prefix[name] = tuple(sums)
        return cls(tuple(kinds), bounced, bounce_positions, prefix)

    def before(self, name: str, m: int) -> int:
        """How many `name` the messages `0..m-1` have."""
        sums = self.prefix[name]
        q, r = divmod(m, _PERIOD)
        return q * sums[_PERIOD] + sums[r]


class _Recipient(NamedTuple):
    send: int
    campaign: int
    id_message: str
    id_send: str
    id_user_list: str
    contact: int
    id_email: str
    email: str
    domain: str
    tld: str
    sent: int


class MailkitDataset:
    """Ground truth and lazy raw rows for one :class:`MailkitDataSpec`."""

    def __init__(self, spec: MailkitDataSpec | None = None) -> None:
        spec = spec or MailkitDataSpec()
        if spec.end <= spec.start:
            raise ValueError("spec.end must be after spec.start")
        if min(spec.campaigns, spec.sends_per_campaign, spec.recipients_per_send) < 1:
            raise ValueError("spec needs at least one campaign, send and recipient")
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self.grown: dict[str, int] = dict.fromkeys(FUNCTIONS, 0)
        self._pattern = _Pattern.make(spec.seed)
        self._salt = _mix(spec.seed * 1_000_003 + 29)
        self._salts = {f: _mix(self._salt ^ (n + 1) << 48) for n, f in enumerate(FUNCTIONS)}
        self._minutes: dict[int, str] = {}  # epoch // 60 -> "YYYY-MM-DD HH:MM:" (local)
        first = datetime.combine(spec.start, time(9, 0), self.zone)
        last = datetime.combine(spec.end, time(0, 0), self.zone) - timedelta(hours=6)
        self._first_send = int(first.timestamp())
        self._slot = max(1, (int(last.timestamp()) - self._first_send) // spec.sends)
        half_slot = max(1, self._slot // 2)
        self._send_times = [self._first_send] + [
            self._first_send + s * self._slot + _mix(self._salt ^ (s << 32)) % half_slot
            for s in range(1, spec.sends)
        ]
        self._sends = spec.sends
        self._per_send = spec.recipients_per_send
        self._send_info = [
            (
                s // spec.sends_per_campaign,
                str(self.campaign_id(s // spec.sends_per_campaign)),
                str(self.send_id(s)),
                str(201 + s // spec.sends_per_campaign % 2),
                self._send_times[s],
            )
            for s in range(spec.sends)
        ]
        self._campaign_cache: dict[int, dict[str, Any]] = {}
        self._send_cache: dict[int, dict[str, Any]] = {}
        self.data_end = spec.end  # the day after the last send day

    # ------------------------------------------------------------------- ids and counts
    def campaign_id(self, c: int) -> int:
        return 12345 + 7 * c

    def send_id(self, s: int) -> int:
        return 123456 + 13 * s

    def campaign_index(self, id_message: Any) -> int | None:
        n = as_int(id_message)
        if n is None or (n - 12345) % 7:
            return None
        c = (n - 12345) // 7
        return c if 0 <= c < self.spec.campaigns else None

    def send_index(self, id_send: Any) -> int | None:
        n = as_int(id_send)
        if n is None or (n - 123456) % 13:
            return None
        s = (n - 123456) // 13
        return s if 0 <= s < self.spec.sends else None

    def row_id(self, function: str, i: int) -> int:
        """The id of row `i` of a raw function (strictly increasing in `i`)."""
        return _ID_BASE[function] + 3 * i + _cheap(self._salts[function] ^ i) % 3

    def first_index_at(self, function: str, start_id: int) -> int:
        """The smallest row index whose id is >= `start_id`."""
        i = max(0, (start_id - _ID_BASE[function]) // 3)
        return i if self.row_id(function, i) >= start_id else i + 1

    def base_count(self, function: str) -> int:
        """Rows of a raw function in the seeded data (before any growth)."""
        return self._before(function, self.spec.messages)

    def count(self, function: str, grown: Mapping[str, int] | None = None) -> int:
        return self.base_count(function) + (self.grown if grown is None else grown).get(function, 0)

    def grow(self, function: str, rows: int) -> None:
        """Append `rows` rows at the end of a raw function's id range."""
        self.grown[function] = self.grown.get(function, 0) + rows

    def _before(self, function: str, m: int) -> int:
        """Rows of `function` that belong to messages `0..m-1` (by the index sequence)."""
        if function == MESSAGES:
            return m
        return self._pattern.before("bounces" if function == BOUNCES else "responses", m)

    def _message_of(self, function: str, i: int) -> tuple[int, int]:
        """(message index, ordinal among that message's rows) of row `i`."""
        pattern = self._pattern
        if function == MESSAGES:
            return i, 0
        if function == BOUNCES:
            per = len(pattern.bounce_positions)
            q, r = divmod(i, per)
            return q * _PERIOD + pattern.bounce_positions[r], 0
        sums = pattern.prefix["responses"]
        q, r = divmod(i, sums[_PERIOD])
        p = bisect_right(sums, r) - 1
        return q * _PERIOD + p, r - sums[p]

    def _send_of(self, m: int) -> int:
        return min(m // self._per_send, self._sends - 1)

    # ------------------------------------------------------------------- paging
    def index_ranges(
        self,
        function: str,
        *,
        campaign_ids: Sequence[Any] | None = None,
        send_ids: Sequence[Any] | None = None,
        grown: Mapping[str, int] | None = None,
    ) -> list[tuple[int, int]]:
        """Sorted, disjoint `[lo, hi)` row-index ranges of `function` matching the filters.

        Ids that match no campaign or send filter everything out (an empty list)."""
        spec = self.spec
        sends = set(range(spec.sends))
        if campaign_ids is not None:
            wanted = {self.campaign_index(c) for c in campaign_ids}
            sends = {s for s in sends if s // spec.sends_per_campaign in wanted}
        if send_ids is not None:
            wanted_s = {self.send_index(s) for s in send_ids}
            sends = {s for s in sends if s in wanted_s}
        total = self.count(function, grown)
        ranges: list[tuple[int, int]] = []
        for s in sorted(sends):
            lo = self._before(function, s * spec.recipients_per_send)
            hi = (
                total
                if s == spec.sends - 1
                else self._before(function, (s + 1) * spec.recipients_per_send)
            )
            hi = min(hi, total)
            if lo >= hi:
                continue
            if ranges and ranges[-1][1] == lo:
                ranges[-1] = (ranges[-1][0], hi)
            else:
                ranges.append((lo, hi))
        return ranges

    def page(
        self,
        function: str,
        *,
        start_id: int | None = None,
        limit: int = 25_000,
        campaign_ids: Sequence[Any] | None = None,
        send_ids: Sequence[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to `limit` rows with id >= `start_id` matching the filters, ascending ids."""
        return list(
            islice(
                self.rows(
                    function, start_id=start_id, campaign_ids=campaign_ids, send_ids=send_ids
                ),
                limit,
            )
        )

    def rows(
        self,
        function: str,
        *,
        start_id: int | None = None,
        campaign_ids: Sequence[Any] | None = None,
        send_ids: Sequence[Any] | None = None,
        grown: Mapping[str, int] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows of `function` with id >= `start_id` matching the filters, built one by one."""
        first = 0 if start_id is None else self.first_index_at(function, start_id)
        build = self._builder(function)
        for lo, hi in self.index_ranges(
            function, campaign_ids=campaign_ids, send_ids=send_ids, grown=grown
        ):
            for i in range(max(lo, first), hi):
                yield build(i)

    def _builder(self, function: str) -> Any:
        if function == BOUNCES:
            return self.bounce
        if function == MESSAGES:
            return self.message
        if function == RESPONSES:
            return self.response
        raise ValueError(f"not a raw function: {function}")

    # ------------------------------------------------------------------- dates
    def fmt(self, t: int) -> str:
        """Epoch seconds as `YYYY-MM-DD HH:MM:SS` wall-clock time in the account's zone.

        Cached by the minute (offsets change on whole hours): rows are built by the million."""
        minute = t // 60
        head = self._minutes.get(minute)
        if head is None:
            delta = datetime.fromtimestamp(t, self.zone).utcoffset()
            local = minute * 60 + (int(delta.total_seconds()) if delta is not None else 0)
            day, rest = divmod(local, _DAY)
            text = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
            head = f"{text} {rest // 3600:02d}:{rest % 3600 // 60:02d}:"
            if len(self._minutes) > 200_000:
                self._minutes.clear()
            self._minutes[minute] = head
        return head + _SECONDS[t % 60]

    def send_time(self, s: int) -> int:
        """When send `s` starts (epoch seconds); send 0 at `start` 09:00 local."""
        return self._send_times[s]

    def _sent_at(self, m: int) -> int:
        s = self._send_of(m)
        return self._send_times[s] + 1 + (m - s * self._per_send) // 10

    # ------------------------------------------------------------------- rows
    def _recipient(self, m: int) -> _Recipient:
        """Who message `m` went to and when; a grown message is a new recipient of the last
        send. Built once per row, so it is kept flat and cheap."""
        s = m // self._per_send
        if s >= self._sends:
            s = self._sends - 1
            contact = 5_000_000 + m - self.spec.messages
        else:
            contact = m - s * self._per_send
        c, id_message, id_send, list_id, start = self._send_info[s]
        contact += (c % 2) * 10_000_000
        domain = _DOMAINS[_cheap(self._salt ^ contact) % len(_DOMAINS)]
        email = f"{_LOCAL[contact % len(_LOCAL)]}.{contact}@{domain}"
        sent = start + 1 + (m - s * self._per_send) // 10
        return _Recipient(
            s, c, id_message, id_send, list_id, contact, str(5_000_000 + contact), email, domain,
            domain.rsplit(".", 1)[-1], sent,
        )  # fmt: skip

    def bounce(self, j: int) -> dict[str, Any]:
        """raw.bounces row `j`: upper-case keys, every value a string (as the docs' sample)."""
        m, _ = self._message_of(BOUNCES, j)
        who = self._recipient(m)
        status, text, category, mta, recipient = _BOUNCE_KINDS[
            _cheap(self._salts[BOUNCES] ^ ~j) % len(_BOUNCE_KINDS)
        ]
        return {
            "ID_UNDELIVERED_LOG": str(self.row_id(BOUNCES, j)),
            "ID_MESSAGE": who.id_message,
            "ID_SEND": who.id_send,
            "ID_SEND_MESSGE": str(self.row_id(MESSAGES, m)),
            "ID_EMAIL": who.id_email,
            "ID_USER_LIST": who.id_user_list,
            "EMAIL": who.email,
            "STATUS": status,
            "TEXT_STATUS": text,
            "BOUNCE_CAT": category,
            "REMOTE_MTA": mta,
            "RECIPIENT_STATUS": recipient,
            "UTM_CAMPAIGN": f"mailkit-{who.id_message}",
            "CAMPAIGN_NAME": _NAMES[who.campaign % len(_NAMES)],
            "SUBJECT": _SUBJECTS[who.campaign % len(_SUBJECTS)],
        }

    def message(self, m: int) -> dict[str, Any]:
        """raw.messages row `m`: mixed-case keys; ids strings except `ID_template` (a number)."""
        who = self._recipient(m)
        c = who.campaign
        h = _cheap(self._salt ^ ~who.contact)
        message_id = self.row_id(MESSAGES, m)
        return {
            "ID_send_message": str(message_id),
            "ID_message": who.id_message,
            "ID_send": who.id_send,
            "ID_user_list": who.id_user_list,
            "ID_email": who.id_email,
            "ID_template": 9001 + c % 3,
            "type_message": "email",
            "email": who.email,
            "email_date": self.fmt(self._first_send - _DAY - h % 8760 * 3600 - (h >> 24) % 60),
            "message_date": self.fmt(self._send_times[who.send] - 1800),
            "date_sent": self.fmt(who.sent),
            "ab_version": ("A" if m % 2 else "B") if c % 3 == 1 else "",
            "message_status": "sent",
            "tld": who.tld,
            "domain": who.domain,
            "custom_1": str(h % 1000),
            "custom_2": "VIP" if h % 7 == 0 else "",
            **_CUSTOM_EMPTY,
            "first_name": _FIRST[who.contact % len(_FIRST)],
            "last_name": _LAST[(h >> 8) % len(_LAST)],
            "city": _CITIES[(h >> 16) % len(_CITIES)],
            "preview_url": f"https://app.mailkit.example/preview/{message_id}",
        }

    def response(self, k: int) -> dict[str, Any]:
        """raw.responses row `k`: mixed-case keys; `ID_log`, `ID_send_message` and `ID_url`
        numbers (`ID_url` null unless a click), the other ids strings."""
        m, ordinal = self._message_of(RESPONSES, k)
        kinds = self._pattern.kinds[m % _PERIOD]
        kind = kinds[ordinal] if ordinal < len(kinds) else "open"
        who = self._recipient(m)
        c = who.campaign
        h = _cheap(self._salts[RESPONSES] ^ ~k)
        # A message's responses follow each other (opens, then clicks, then the answer).
        first = who.sent + 60 + _cheap(self._salt ^ m) % (2 * _DAY)
        at = first + ordinal * 600 + (h >> 40) % 600
        agent = _AGENTS[(h >> 8) % len(_AGENTS)]
        place = _PLACES[(h >> 12) % len(_PLACES)]
        link = _LINKS[(h >> 16) % len(_LINKS)]
        click = kind == "click"
        ip = f"203.0.113.{1 + (h >> 20) % 250}" if place[1] else ""
        return {
            "ID_log": self.row_id(RESPONSES, k),
            "date": self.fmt(at),
            "type": kind,
            "email": who.email,
            "ID_email": who.id_email,
            "ID_user_list": who.id_user_list,
            "ID_message": who.id_message,
            "ID_send": who.id_send,
            "ID_send_message": self.row_id(MESSAGES, m),
            "ab_version": ("A" if m % 2 else "B") if c % 3 == 1 else "",
            "domain": who.domain,
            "tld": who.tld,
            "ID_url": 7001 + 10 * c + (h >> 16) % len(_LINKS) if click else None,
            "link_type": "link" if click else "",
            "link_url": link[0] if click else "",
            "link_text": link[1] if click else "",
            "link_title": link[2] if click else "",
            "referer": "",
            "unsubscribe_answer": _ANSWERS[h % len(_ANSWERS)] if kind == "unsubscribe" else "",
            "IP": ip,
            "IP_orig": ip,
            "continent": place[0],
            "country": place[1],
            "code3": place[2],
            "code": place[3],
            "region": place[4],
            "region_code": place[5],
            "city": place[6],
            "user_agent": agent[0],
            "browser": agent[1],
            "browser_major": agent[2],
            "browser_minor": agent[3],
            "browser_type": agent[4],
            "os": agent[5],
            "os_version": agent[6],
            "device": agent[7],
            "org": place[7],
        }

    # ------------------------------------------------------------------- campaigns and sends
    def campaign(self, c: int) -> dict[str, Any]:
        """A `mailkit.campaigns.list` row (`ID_MESSAGE` a number, `USER_LIST` a list)."""
        row = self._campaign_cache.get(c)
        if row is None:
            spec = self.spec
            first = c * spec.sends_per_campaign
            last = first + spec.sends_per_campaign - 1
            row = {
                "ID_MESSAGE": self.campaign_id(c),
                "NAME": _NAMES[c % len(_NAMES)] + ("" if c < len(_NAMES) else f" {c}"),
                "SUBJECT": _SUBJECTS[c % len(_SUBJECTS)],
                "SUBJECT_B": _SUBJECTS[(c + 1) % len(_SUBJECTS)] if c % 3 == 1 else "",
                "MSG_TYPE": "email",
                "CAMPAIGN_TYPE": "normal",
                "USE_AB": "1" if c % 3 == 1 else "0",
                "TEST_MODE": "0",
                "SEND_DATE": self.fmt(self.send_time(first)),
                "TIME_ZONE": spec.timezone,
                "LAST_SENT": self.fmt(self.send_time(last)),
                "REPEAT": "0",
                "REPEAT_COUNT": "0",
                "PERIOD": "",
                "DAYS": "",
                "STATUS": "enabled",
                "TYPE": "single",
                "USER_LIST": [str(201 + c % 2)],
            }
            self._campaign_cache[c] = row
        return dict(row)

    def campaigns(self, id_message: Any = None) -> list[dict[str, Any]]:
        """`mailkit.campaigns.list`: every campaign, or the one `id_message` names ([] if
        unknown)."""
        if id_message is None:
            return [self.campaign(c) for c in range(self.spec.campaigns)]
        c = self.campaign_index(id_message)
        return [] if c is None else [self.campaign(c)]

    def send(self, s: int) -> dict[str, Any]:
        """A `mailkit.report.campaign` row: counts exact over the seeded rows of send `s`."""
        row = self._send_cache.get(s)
        if row is None:
            spec = self.spec
            p = self._pattern
            lo, hi = s * spec.recipients_per_send, (s + 1) * spec.recipients_per_send

            def between(name: str) -> int:
                return p.before(name, hi) - p.before(name, lo)

            sent = hi - lo
            delivered = sent - between("bounces")
            readers, clickers = between("open_u"), between("click_u")
            started = self.send_time(s)
            c = s // spec.sends_per_campaign
            row = {
                "ID_SEND": str(self.send_id(s)),
                "DATE": self.fmt(started),
                "DATE2": self.fmt(self._sent_at(hi - 1)),
                "SUBJECT": _SUBJECTS[c % len(_SUBJECTS)],
                "FROM": "Example Shop <news@example.cz>",
                "SEND_COUNT": sent,
                "DELIVERED_COUNT": delivered,
                "READ_COUNT": between("open"),
                "READ_COUNT_U": readers,
                "CLICK_COUNT": between("click"),
                "CLICK_COUNT_U": clickers,
                "CLICK_RATE": f"{100 * clickers / delivered:.2f}" if delivered else "0.00",
                "CLICK_RATE2": f"{100 * clickers / readers:.2f}" if readers else "0.00",
                "CONVERSION_COUNT": 0,
                "CONVERSION_COUNT_U": 0,
                "FORWARD_COUNT": _mix(self._salt ^ s ^ 0xF0) % 4,
                "PRINT_COUNT": 0,
                "UNSUBSCRIBE": between("unsubscribe"),
                "SPAM_REPORT": 0,
                "REV": "0.00",
            }
            self._send_cache[s] = row
        return dict(row)

    def sends_of(
        self, c: int, range_from: date | None = None, range_to: date | None = None
    ) -> list[int]:
        """Send indexes of campaign `c` whose local start day is in `[range_from, range_to]`."""
        first = c * self.spec.sends_per_campaign
        out = []
        for s in range(first, first + self.spec.sends_per_campaign):
            day = date.fromisoformat(self.fmt(self.send_time(s))[:10])
            if (range_from is None or day >= range_from) and (range_to is None or day <= range_to):
                out.append(s)
        return out

    # ------------------------------------------------------------------- truth
    def truth(
        self,
        *,
        campaign_ids: Sequence[Any] | None = None,
        send_ids: Sequence[Any] | None = None,
        grown: Mapping[str, int] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Every raw row a sync must deliver, per stream, in raw vocabulary and id order.

        `mailkit_sends` are the `mailkit.report.campaign` rows of every send (whatever its
        date) with the campaign's `ID_MESSAGE` added. Filters narrow every stream; `grown`
        (default: now) says how many rows each function had grown by at the moment wanted.
        """
        out: dict[str, list[dict[str, Any]]] = {}
        sends = self._filtered_sends(campaign_ids, send_ids)
        campaigns = sorted({s // self.spec.sends_per_campaign for s in sends})
        out["mailkit_campaigns"] = [self.campaign(c) for c in campaigns]
        out["mailkit_sends"] = [
            {**self.send(s), "ID_MESSAGE": self.campaign_id(s // self.spec.sends_per_campaign)}
            for s in sends
        ]
        for function, stream in _RAW_STREAMS.items():
            out[stream] = list(
                self.rows(function, campaign_ids=campaign_ids, send_ids=send_ids, grown=grown)
            )
        return out

    def counts(
        self,
        *,
        campaign_ids: Sequence[Any] | None = None,
        send_ids: Sequence[Any] | None = None,
        grown: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """`len` of every `truth` list, computed without building a row."""
        sends = self._filtered_sends(campaign_ids, send_ids)
        out = {
            "mailkit_campaigns": len({s // self.spec.sends_per_campaign for s in sends}),
            "mailkit_sends": len(sends),
        }
        for function, stream in _RAW_STREAMS.items():
            ranges = self.index_ranges(
                function, campaign_ids=campaign_ids, send_ids=send_ids, grown=grown
            )
            out[stream] = sum(hi - lo for lo, hi in ranges)
        return out

    def _filtered_sends(
        self, campaign_ids: Sequence[Any] | None, send_ids: Sequence[Any] | None
    ) -> list[int]:
        spec = self.spec
        sends = range(spec.sends)
        wanted_c = None if campaign_ids is None else {self.campaign_index(c) for c in campaign_ids}
        wanted_s = None if send_ids is None else {self.send_index(s) for s in send_ids}
        return [
            s
            for s in sends
            if (wanted_c is None or s // spec.sends_per_campaign in wanted_c)
            and (wanted_s is None or s in wanted_s)
        ]


def as_int(value: Any) -> int | None:
    """A whole number given as an int or a decimal string; anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
