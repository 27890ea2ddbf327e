"""Seeded generator of ExactTarget "Retrieve All Jobs (Tracking Bulk Async)" exports.

The generator is the sandbox's ground truth: it writes the ZIP/XML file the vendor would deposit
on its FTP site (``write_export``) and returns the very same content as plain dicts (``truth``),
so tests can compare what the tap emitted with what the vendor "sent", record for record.

Model (see ``docs/exacttarget.md``):

* Every member account sends ``jobs_per_day`` jobs on every day from ``spec.start`` to
  ``spec.end`` (local time, no zone).  Job ids are global ordinals, unique across members.
* Each job has ``subscribers_per_job`` recipients.  About 80% of them have tracking activity
  (5% bounce, 75% open 1-3 times and may click, unsubscribe, answer a survey, convert); events
  happen 0..``max_activity_delay_days`` days after the send, and only events on or before
  ``spec.end`` exist.  Recipients without any activity never appear in an export (vendor page:
  "returns information on a subscriber only if the email to that subscriber was open, bounced,
  or marked undeliverable").
* Every job draws its content from its own ``random.Random(f"{seed}:{member}:{job_id}")``, so a
  job is regenerated independently and cheaply; nothing is held in memory across jobs.

Export semantics (the vendor's, as we read them): a job is in the export iff its
``DeliveredTime`` date lies in ``sends`` (inclusive); in such a job a subscriber node is written
iff it has at least one event whose date lies in ``activity`` (inclusive), and only those
in-range events are written (other containers are written empty, e.g. ``<clicks />``).  Every
member account always appears, with ``<jobs />`` when it has no job in the send range.  Job
summaries (counts, lists, links) do not depend on the requested ranges.

Edge cases (``edge_cases=True``) are described on ``ExactTargetDataset.edge_case_catalog``.
"""

from __future__ import annotations

import random
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "EVENT_KINDS",
    "KINDS",
    "WINDOW_DAYS",
    "ExactTargetDataSpec",
    "ExactTargetDataset",
    "format_et_datetime",
]

DAY = 86_400
#: The tap's activity windows: 7 inclusive days starting at ``spec.start``.  Edge-case events
#: are placed on the boundaries of these windows.
WINDOW_DAYS = 7
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
EVENT_KINDS = ("opens", "clicks", "bounces", "unsubscribes", "conversions", "survey_responses")

TruthRow = dict[str, Any]
DateRange = tuple[date, date]

# ---------------------------------------------------------------------------------------------
# Internal records.  Plain tuples, because the generator makes millions of them per export.
#
# _Sub = (subscriberID, listID, firstname, lastname, email, type, status, attributes,
#         bounce, opens, clicks, unsub, surveys, conversions, t_min, t_max, needs_escape)
# times are int seconds since spec.start 00:00 (local); link references are indexes into the
# job's links.
# ---------------------------------------------------------------------------------------------
_Attrs = tuple[tuple[str, "str | None"], ...]
_Bounce = tuple[int, str, str, "str | None"]  # (bouncedate, bouncetype, smtpcode, reason)
_Click = tuple[int, int]  # (clickdate, link index)
_Unsub = tuple[int, "str | None"]  # (unsubdate, reason)
_Survey = tuple[int, str, "str | None"]  # (responsedate, question, answer)
_Data = tuple[tuple[str, str], ...]  # attributes of one <data/> element, in order
_Conv = tuple[int, int, tuple[_Data, ...]]  # (conversionDate, link index, data_set)
_Sub = tuple[
    str,
    str,
    "str | None",
    "str | None",
    str,
    str,
    str,
    _Attrs,
    "_Bounce | None",
    list[int],
    list[_Click],
    "_Unsub | None",
    list[_Survey],
    list[_Conv],
    int,
    int,
    bool,
]

_FIRST = (
    "Ana", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hiro", "Inés", "Jack", "Kofi",
    "Lena", "Miguel", "Nora", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma",
    "Viktor", "Wen", "Yara", "Zoë",
)  # fmt: skip
_LAST = (
    "Brown", "García", "Smith", "Nguyen", "Müller", "O'Brien", "Kowalski", "Rossi", "Johnson",
    "Søndergaard", "Lee", "Dubois", "Patel", "Tanaka", "Silva", "Novák",
)  # fmt: skip
_EMAIL_LOCAL = tuple(
    f.lower().replace("é", "e").replace("ë", "e").replace("á", "a") + "." for f in _FIRST
)
_COLORS = ("Red", "Blue", "Green", "Grün", "Violet")
_LIST_NAMES = ("Newsletter", "Customers", "Prospects", "VIP", "Événements", "Partners")
_LINKS = (
    ("https://www.example.com/", "Our Domain"),
    ("https://www.example.com/sale", "Sale"),
    ("https://www.example.com/blog/2024/tips", "Blog"),
    ("https://shop.example.com/cart?src=email", "Cart"),
    ("https://www.example.com/unsubscribe", "Unsubscribe"),
    ("https://www.example.com/events/paris", "Événement"),
)
_SUBJECTS = ("Weekly news", "Your January offers", "New arrivals", "Last chance", "Hello again")
_BOUNCE_TYPES = (("Hard bounce", "550", "Mailbox does not exist"),
                 ("Soft bounce", "452", "Mailbox full"),
                 ("Block bounce", "554", None))  # fmt: skip
_UNSUB_REASONS = ("Unsubscribed via link", "Too many emails", None)
_SURVEY = (("How satisfied are you?", ("5", "4", "3")),
           ("Would you recommend us?", ("Yes", "No")))  # fmt: skip
_DATA_ITEMS = (("26.36", "Dollars", "true"), ("12.00", "Dollars", "true"), ("3", "Items", "false"))

_HOUR_PREFIX = tuple(f" {(h % 12) or 12}:" for h in range(24))
_HOUR_SUFFIX = tuple(" AM" if h < 12 else " PM" for h in range(24))
_MIN_SEC = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))


def format_et_datetime(day: date, seconds: int = 0) -> str:
    """``M/D/YYYY h:mm:ss AM/PM`` (no zero padding on month, day, hour), the vendor's format."""
    return f"{day.month}/{day.day}/{day.year}{_time_of_day(seconds)}"


def _time_of_day(sod: int) -> str:
    h = sod // 3600
    return _HOUR_PREFIX[h] + _MIN_SEC[sod % 3600] + _HOUR_SUFFIX[h]


def _x(text: str) -> str:
    """Escape element text (``&``, ``<``, ``>``)."""
    return escape(text)


def _leaf(tag: str, value: str | None, *, esc: bool, empty: str = "pair") -> str:
    if value is None:
        return f"<{tag}></{tag}>" if empty == "pair" else f"<{tag} />"
    return f"<{tag}>{escape(value) if esc else value}</{tag}>"


@dataclass(frozen=True)
class ExactTargetDataSpec:
    """What the seeded account holds.  The same spec always gives byte-identical exports."""

    seed: int = 1
    start: date = date(2024, 1, 1)  # first send day (local)
    end: date = date(2024, 1, 21)  # last activity day (inclusive, local)
    members: tuple[str, ...] = ("1001", "1002")  # enterprise member accounts
    jobs_per_day: int = 2  # per member
    subscribers_per_job: int = 12
    max_activity_delay_days: int = 10  # events happen 0..N days after the send
    edge_cases: bool = True


@dataclass
class _Job:
    member: str
    member_idx: int
    day: int
    k: int
    job_id: str
    send: int
    summary: dict[str, str | None]  # emailSummary leaves before <Lists>
    lists: list[tuple[str, str]]  # (list_ID, list_name)
    counts: dict[str, str]  # sentCount .. uniqueClickCount
    ftaf: dict[str, str]
    links: list[tuple[str, str, str, str, str]]  # URL, name, click_throughs, Percent, Net_CTR
    conversion_summary: dict[str, str] | None
    rng: random.Random
    no_activity: bool
    edge_kinds: tuple[str, ...]  # "start", "boundary", "end"


class ExactTargetDataset:
    """Ground truth and export writer for one :class:`ExactTargetDataSpec`."""

    #: Human-readable list of the deterministic edge cases (``edge_cases=True``).
    edge_case_catalog = (
        "job 1 of the first member on spec.start is delivered at 12:00:00 AM and has a subscriber "
        "whose open is at spec.start 12:00:00 AM (same second as the send)",
        "for every window boundary B = start + 7k <= end: in the first member's first job sent on "
        "B-1, one subscriber opens at B-1 11:59:59 PM, one opens and clicks at B 12:00:00 AM, one "
        "opens at both (its node appears in two adjacent windows with different opens)",
        "for every boundary B the last member's last job on B-1 is delivered at 11:59:59 PM and "
        "its first job on B at 12:00:00 AM (send-range boundaries)",
        "in the first member's first job on spec.end a subscriber opens and unsubscribes at "
        "spec.end 11:59:59 PM",
        "in the start job: two identical opens (same timestamp twice); one subscriber in two lists "
        "(two nodes, same subscriberID, different listID, same open time in both); XML specials "
        'and non-ASCII (& < > " é emoji) in EmailName/EmailSubject/FromName, a link URL and '
        "name, subscriber names, an attribute, a survey answer; <firstname></firstname> and "
        "<lastname /> empty; an empty attribute element; a conversion with two <data> elements "
        'one of which has unit=""; a full <undeliverable> bounce',
        "the last member's last job on start+1 has no activity at all (<subscribers />)",
    )

    def __init__(self, spec: ExactTargetDataSpec) -> None:
        if spec.end < spec.start:
            raise ValueError("spec.end is before spec.start")
        if not spec.members or spec.jobs_per_day < 1 or spec.subscribers_per_job < 0:
            raise ValueError("spec needs members, jobs_per_day >= 1, subscribers_per_job >= 0")
        self.spec = spec
        self._ndays = (spec.end - spec.start).days + 1
        self._end_hi = self._ndays * DAY  # events at t >= this are after spec.end
        self._max_delay = max(spec.max_activity_delay_days, 0) * DAY
        self._day_str = [
            f"{d.month}/{d.day}/{d.year}"
            for d in (spec.start + timedelta(days=i) for i in range(self._ndays))
        ]
        self._pool = max(3 * spec.subscribers_per_job + 7, 101)
        # Day index of every window start after the first one.
        self._boundaries = list(range(WINDOW_DAYS, self._ndays, WINDOW_DAYS))
        edge_first: dict[int, list[str]] = {}
        if spec.edge_cases:
            edge_first.setdefault(0, []).append("start")
            for b in self._boundaries:
                edge_first.setdefault(b - 1, []).append("boundary")
            edge_first.setdefault(self._ndays - 1, []).append("end")
        self._edge_first_member_jobs = edge_first  # day -> kinds, for (member 0, k = 0)
        last_m = len(spec.members) - 1
        na_day = 1 if self._ndays > 1 else 0
        na_k = spec.jobs_per_day - 1
        self._no_activity: tuple[int, int, int] | None = None
        if spec.edge_cases and not (last_m == 0 and na_k == 0 and na_day in edge_first):
            self._no_activity = (last_m, na_day, na_k)

    # ------------------------------------------------------------------------------ public API
    @classmethod
    def sized(
        cls,
        total_events: int,
        *,
        seed: int = 1,
        start: date = date(2024, 1, 1),
        end: date = date(2024, 1, 21),
        members: tuple[str, ...] = ("1001", "1002"),
        jobs_per_day: int = 2,
        max_activity_delay_days: int = 10,
        edge_cases: bool = True,
    ) -> ExactTargetDataset:
        """A dataset whose whole-range export holds about ``total_events`` events.

        Events are opens + clicks + bounces + unsubscribes + conversions + survey responses of the
        export with ``activity = sends = (start, end)``.  Two small probes give a linear fit.
        """

        def spec_for(n: int) -> ExactTargetDataSpec:
            return ExactTargetDataSpec(
                seed=seed,
                start=start,
                end=end,
                members=members,
                jobs_per_day=jobs_per_day,
                subscribers_per_job=n,
                max_activity_delay_days=max_activity_delay_days,
                edge_cases=edge_cases,
            )

        whole = (start, end)

        def events(n: int) -> int:
            c = cls(spec_for(n)).counts(activity=whole, sends=whole)
            return sum(c[k] for k in EVENT_KINDS)

        p0, p1 = 20, 60
        e0, e1 = events(p0), events(p1)
        per_sub = max((e1 - e0) / (p1 - p0), 1e-9)
        n = max(1, round(p0 + (total_events - e0) / per_sub))
        return cls(spec_for(n))

    def write_export(
        self,
        dest: Path | BinaryIO,
        *,
        activity: DateRange,
        sends: DateRange,
        member_name: str = "tracking.xml",
        corrupt_xml: bool = False,
    ) -> dict[str, int]:
        """Write the vendor's ZIP (one deflated XML member) to ``dest``; return ``counts``.

        Streams: one job's XML at a time is built as strings and written through
        ``ZipFile.open(..., "w")``, so memory stays flat however large the export.  With
        ``corrupt_xml`` a mismatched tag is written about halfway through the jobs (the ZIP is
        still valid); the returned counts then describe the intact content.
        """
        counts = dict.fromkeys(KINDS, 0)
        info = zipfile.ZipInfo(member_name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        # Fastest deflate level: the generator must make millions of events in seconds.
        if sys.version_info >= (3, 13):
            info.compress_level = 1
        else:
            info._compresslevel = 1  # type: ignore[attr-defined]
        est_bytes = (
            len(self.spec.members) * self._ndays * self.spec.jobs_per_day
            * self.spec.subscribers_per_job * 700
        )  # fmt: skip
        corrupt_at = self._count_jobs(sends) // 2 if corrupt_xml else -1
        lo, hi = self._bounds(activity)
        with (
            zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf,
            zf.open(info, "w", force_zip64=est_bytes > 1_500_000_000) as out,
        ):
            buf: list[str] = [
                "<?xml version='1.0'?>\n<exacttarget><system><tracking>\n<daterange><startDate>",
                format_et_datetime(activity[0]),
                "</startDate><endDate>",
                format_et_datetime(activity[1]),
                "</endDate></daterange>\n<accounts>\n",
            ]
            if corrupt_at == 0:
                buf.append(_CORRUPTION)
            job_no = 0
            for m_idx, member in enumerate(self.spec.members):
                buf.append(f"<account><memberID>{_x(member)}</memberID>")
                jobs = self._jobs(m_idx, sends)
                first = next(jobs, None)
                if first is None:
                    buf.append("<jobs />")
                else:
                    buf.append("<jobs>\n")
                    job: _Job | None = first
                    while job is not None:
                        self._write_job(job, (lo, hi), buf=buf, out=out, counts=counts)
                        job_no += 1
                        if job_no == corrupt_at:
                            buf.append(_CORRUPTION)
                        job = next(jobs, None)
                    buf.append("</jobs>")
                buf.append("</account>\n")
            buf.append("</accounts>\n</tracking></system></exacttarget>\n")
            out.write("".join(buf).encode())
        return counts

    def counts(self, *, activity: DateRange, sends: DateRange) -> dict[str, int]:
        """Number of rows of each kind in the export (``len`` of each ``truth`` list)."""
        counts = dict.fromkeys(KINDS, 0)
        lo, hi = self._bounds(activity)
        for m_idx in range(len(self.spec.members)):
            for job in self._jobs(m_idx, sends):
                counts["jobs"] += 1
                counts["job_links"] += len(job.links)
                counts["job_lists"] += len(job.lists)
                for sub in self._subs(job):
                    f = _filter(sub, lo, hi)
                    if f is None:
                        continue
                    counts["subscribers"] += 1
                    counts["bounces"] += f[8] is not None
                    counts["opens"] += len(f[9])
                    counts["clicks"] += len(f[10])
                    counts["unsubscribes"] += f[11] is not None
                    counts["survey_responses"] += len(f[12])
                    counts["conversions"] += len(f[13])
        return counts

    def truth(self, *, activity: DateRange, sends: DateRange) -> dict[str, list[TruthRow]]:
        """The export's content as dicts in the vendor's raw vocabulary, in document order.

        Values are the element texts as a parser returns them (unescaped; ``None`` for empty
        elements; dates raw ``M/D/YYYY h:mm:ss AM/PM``).  Context keys: ``member_id``,
        ``job_id`` and, for subscriber-level kinds, ``subscriber_id`` and ``list_id``.
        """
        out: dict[str, list[TruthRow]] = {k: [] for k in KINDS}
        lo, hi = self._bounds(activity)
        fmt = self._fmt
        for m_idx, member in enumerate(self.spec.members):
            for job in self._jobs(m_idx, sends):
                ctx = {"member_id": member, "job_id": job.job_id}
                row: TruthRow = {**ctx, **job.summary}
                row.update(job.counts)
                row.update(job.ftaf)
                row["Conversion_Summary"] = (
                    dict(job.conversion_summary) if job.conversion_summary else None
                )
                out["jobs"].append(row)
                for list_id, list_name in job.lists:
                    out["job_lists"].append({**ctx, "list_ID": list_id, "list_name": list_name})
                for url, name, ct, pct, ctr in job.links:
                    out["job_links"].append(
                        {
                            **ctx,
                            "URL": url,
                            "name": name,
                            "click_throughs": ct,
                            "Percent": pct,
                            "Net_CTR": ctr,
                        }
                    )
                for sub in self._subs(job):
                    f = _filter(sub, lo, hi)
                    if f is None:
                        continue
                    (sid, lid, first, last, email, typ, status, attrs,
                     bounce, opens, clicks, unsub, surveys, convs, _, _, _) = f  # fmt: skip
                    sctx = {**ctx, "subscriber_id": sid, "list_id": lid}
                    out["subscribers"].append(
                        {
                            **sctx,
                            "subscriberID": sid,
                            "listID": lid,
                            "firstname": first,
                            "lastname": last,
                            "email": email,
                            "type": typ,
                            "status": status,
                            "attributes": dict(attrs),
                        }
                    )
                    if bounce is not None:
                        out["bounces"].append(
                            {
                                **sctx,
                                "bouncedate": fmt(bounce[0]),
                                "bouncetype": bounce[1],
                                "smtpcode": bounce[2],
                                "reason": bounce[3],
                            }
                        )
                    for t in opens:
                        out["opens"].append({**sctx, "opendate": fmt(t)})
                    for t, li in clicks:
                        out["clicks"].append(
                            {
                                **sctx,
                                "clickdate": fmt(t),
                                "URL": job.links[li][0],
                                "linkname": job.links[li][1],
                            }
                        )
                    if unsub is not None:
                        out["unsubscribes"].append(
                            {**sctx, "unsubdate": fmt(unsub[0]), "reason": unsub[1]}
                        )
                    for t, question, answer in surveys:
                        out["survey_responses"].append(
                            {**sctx, "responsedate": fmt(t), "question": question, "answer": answer}
                        )
                    for t, li, data_set in convs:
                        out["conversions"].append(
                            {
                                **sctx,
                                "conversionDate": fmt(t),
                                "linkID": str(li + 1),
                                "linkAlias": _alias(job.links[li][1]),
                                "linkURI": job.links[li][0],
                                "data_set": [dict(d) for d in data_set],
                            }
                        )
        return out

    def job_ids(self, *, sends: DateRange) -> list[tuple[str, str]]:
        """``(member_id, job_id)`` of every job sent in ``sends``, in document order."""
        return [
            (job.member, job.job_id)
            for m_idx in range(len(self.spec.members))
            for job in self._jobs(m_idx, sends)
        ]

    # ------------------------------------------------------------------------------ internals
    def _fmt(self, t: int) -> str:
        return self._day_str[t // DAY] + _time_of_day(t % DAY)

    def _bounds(self, activity: DateRange) -> tuple[int, int]:
        lo = (activity[0] - self.spec.start).days * DAY
        hi = ((activity[1] - self.spec.start).days + 1) * DAY
        return lo, hi

    def _day_range(self, sends: DateRange) -> range:
        d0 = max((sends[0] - self.spec.start).days, 0)
        d1 = min((sends[1] - self.spec.start).days, self._ndays - 1)
        return range(d0, d1 + 1)

    def _count_jobs(self, sends: DateRange) -> int:
        return len(self._day_range(sends)) * self.spec.jobs_per_day * len(self.spec.members)

    def _jobs(self, m_idx: int, sends: DateRange) -> Iterator[_Job]:
        for day in self._day_range(sends):
            for k in range(self.spec.jobs_per_day):
                yield self._job(m_idx, day, k)

    def _job(self, m_idx: int, day: int, k: int) -> _Job:
        spec = self.spec
        member = spec.members[m_idx]
        jpd = spec.jobs_per_day
        ordinal = (m_idx * self._ndays + day) * jpd + k
        job_id = str(4_100_001 + ordinal)
        rng = random.Random(f"{spec.seed}:{member}:{job_id}")
        r = rng.random
        edge_kinds: tuple[str, ...] = ()
        if m_idx == 0 and k == 0:
            edge_kinds = tuple(self._edge_first_member_jobs.get(day, ()))
        no_activity = self._no_activity == (m_idx, day, k)
        # DeliveredTime: jobs spread over 6 AM .. 8 PM, in k order; forced on edge days.
        slot = 14 * 3600 // jpd
        sod = 6 * 3600 + k * slot + int(r() * slot)
        last_m = len(spec.members) - 1
        if spec.edge_cases:
            if "start" in edge_kinds:
                sod = 0
            if m_idx == last_m and k == jpd - 1 and (day + 1) in self._boundaries:
                sod = DAY - 1
            if m_idx == last_m and k == 0 and day in self._boundaries:
                sod = 0
        send = day * DAY + sod
        special = "start" in edge_kinds
        n_lists = 2 if special else 1 + (r() < 0.4)
        list_base = 650_000 + 100 * m_idx
        lists: list[tuple[str, str]] = []
        first_list = int(r() * len(_LIST_NAMES))
        for j in range(n_lists):
            li = (first_list + j) % len(_LIST_NAMES)
            lists.append((str(list_base + li), _LIST_NAMES[li]))
        n_links = 1 + int(r() * 4)
        first_link = int(r() * len(_LINKS))
        sent = spec.subscribers_per_job
        links: list[tuple[str, str, str, str, str]] = []
        for j in range(n_links):
            url, name = _LINKS[(first_link + j) % len(_LINKS)]
            if special and j == 0:
                url, name = _SPECIAL_URL, _SPECIAL_LINK_NAME
            ct = 0 if no_activity else int(r() * (sent // 3 + 1))
            pct = f"{100.0 * ct / sent:.1f}%" if sent else "0.0%"
            net = f"{100.0 * ct / max(sent, 1) / 2:.1f}%"
            links.append((url, name, str(ct), pct, net))
        subject = _SUBJECTS[int(r() * len(_SUBJECTS))]
        summary: dict[str, str | None] = {
            "EmailName": _SPECIAL_EMAIL_NAME if special else f"{subject} #{job_id}",
            "EmailSubject": _SPECIAL_SUBJECT if special else subject,
            "FromName": _SPECIAL_FROM if special else "Example Marketing",
            "FromEmail": "news@example.com",
            "Additional": None if r() < 0.7 else "Campaign A",
            "IsMultipart": "True" if r() < 0.8 else "False",
            "DeliveredTime": self._fmt(send),
        }
        undelivered = 0 if no_activity else int(sent * 0.05 * r() * 2)
        opens_n = 0 if no_activity else int(sent * (0.6 + 0.3 * r()))
        counts = {
            "sentCount": str(sent),
            "deliveredCount": str(sent - undelivered),
            "undeliveredCount": str(undelivered),
            "unSubscribedCount": "0" if no_activity else str(int(sent * 0.03 * r() * 2)),
            "openCount": str(opens_n),
            "uniqueClickCount": str(int(opens_n * 0.4 * r())),
        }
        ftaf = {
            "email_forwarders": str(int(r() * 3)),
            "new_recipients": str(int(r() * 3)),
            "new_subscribers": "0",
        }
        conversion_summary: dict[str, str] | None = None
        if special or r() < 0.3:
            conversion_summary = {
                "total_conversions": str(int(r() * 5) + 1),
                "total_amount": f"{r() * 200:.2f}",
            }
        return _Job(
            member=member,
            member_idx=m_idx,
            day=day,
            k=k,
            job_id=job_id,
            send=send,
            summary=summary,
            lists=lists,
            counts=counts,
            ftaf=ftaf,
            links=links,
            conversion_summary=conversion_summary,
            rng=rng,
            no_activity=no_activity,
            edge_kinds=edge_kinds,
        )

    def _subs(self, job: _Job) -> Iterator[_Sub]:
        """All subscriber nodes of a job that have any activity (before range filtering)."""
        if job.no_activity:
            return
        yield from self._random_subs(job)
        if job.edge_kinds:
            end_hi = self._end_hi
            for sub in self._edge_subs(job):
                clipped = _filter(sub, 0, end_hi)
                if clipped is not None:
                    yield clipped

    def _random_subs(self, job: _Job) -> Iterator[_Sub]:
        r = job.rng.random
        send = job.send
        end_hi = self._end_hi
        max_delay = self._max_delay
        list_ids = [lid for lid, _ in job.lists]
        n_lists = len(list_ids)
        n_links = len(job.links)
        pool = self._pool
        offset = int(r() * pool)
        id_base = 100_000_000 * (job.member_idx + 1)
        n_first = len(_FIRST)
        n_last = len(_LAST)
        n_email = len(_EMAIL_LOCAL)
        two_days = 2 * DAY
        empty_clicks: list[_Click] = []
        empty_surveys: list[_Survey] = []
        empty_convs: list[_Conv] = []
        for i in range(self.spec.subscribers_per_job):
            u = r()
            if u >= 0.8:
                continue  # sent, never opened: no tracking rows
            idx = (offset + i) % pool
            lid = list_ids[int(r() * n_lists)] if n_lists > 1 else list_ids[0]
            status = "Active"
            bounce: _Bounce | None = None
            opens: list[int]
            clicks = empty_clicks
            unsub: _Unsub | None = None
            surveys = empty_surveys
            convs = empty_convs
            if u < 0.05:
                t = send + int(r() * 7200)
                if t >= end_hi:
                    continue
                btype, smtp, reason = _BOUNCE_TYPES[int(r() * 3)]
                bounce = (t, btype, smtp, reason)
                opens = []
                status = "Held" if btype == "Hard bounce" else "Active"
                t_min = t_max = t
            else:
                t = send + int(max_delay * r() ** 3)
                if t >= end_hi:
                    continue
                v = r()
                if v < 0.34:
                    opens = [t]
                    t_max = t
                else:
                    t2 = t + int(r() * two_days)
                    if v < 0.67 or t2 >= end_hi:
                        opens = [t] if t2 >= end_hi else [t, t2]
                    else:
                        t3 = t2 + int(r() * two_days)
                        opens = [t, t2] if t3 >= end_hi else [t, t2, t3]
                    t_max = opens[-1]
                t_min = t
                w = r()
                if w < 0.4:
                    tc = t + int(r() * 600)
                    if tc < end_hi:
                        clicks = [(tc, int(r() * n_links))]
                        if w < 0.08:
                            tc2 = tc + int(r() * 900)
                            if tc2 < end_hi:
                                clicks.append((tc2, int(r() * n_links)))
                        tc_last = clicks[-1][0]
                        t_max = max(t_max, tc_last)
                        if w < 0.06:
                            tv = clicks[0][0] + int(r() * 3600)
                            if tv < end_hi:
                                amt = _DATA_ITEMS[int(r() * 3)]
                                convs = [(tv, clicks[0][1], (_data(amt),))]
                                t_max = max(t_max, tv)
                elif w > 0.97:
                    tu = t + int(r() * 1800)
                    if tu < end_hi:
                        unsub = (tu, _UNSUB_REASONS[int(r() * 3)])
                        status = "Unsubscribed"
                        t_max = max(t_max, tu)
                if r() < 0.03:
                    ts = t + int(r() * 3600)
                    if ts < end_hi:
                        question, answers = _SURVEY[int(r() * 2)]
                        surveys = [(ts, question, answers[int(r() * len(answers))])]
                        t_max = max(t_max, ts)
            attrs: _Attrs = (
                (("Postal__Code", str(10_000 + idx * 7919 % 90_000)),)
                if idx % 3
                else (
                    ("Postal__Code", str(10_000 + idx * 7919 % 90_000)),
                    ("Favorite__Color", _COLORS[idx % 5]),
                )
            )
            yield (
                str(id_base + idx),
                lid,
                _FIRST[idx % n_first],
                _LAST[(idx // n_first) % n_last],
                f"{_EMAIL_LOCAL[idx % n_email]}{idx}@example.com",
                "Text" if idx % 5 == 0 else "HTML",
                status,
                attrs,
                bounce,
                opens,
                clicks,
                unsub,
                surveys,
                convs,
                t_min,
                t_max,
                False,
            )

    def _edge_subs(self, job: _Job) -> Iterator[_Sub]:
        day0 = job.day * DAY
        list1 = job.lists[0][0]
        base = 900_000_000 + 1000 * job.member_idx

        def sub(n: int, events: dict[str, Any], **over: Any) -> _Sub:
            vals: dict[str, Any] = {
                "sid": str(base + n),
                "lid": list1,
                "first": "Edge",
                "last": f"Case{n}",
                "email": f"edge{n}@example.com",
                "type": "HTML",
                "status": "Active",
                "attrs": (("Postal__Code", "60601"),),
                "esc": False,
            }
            vals.update(over)
            bounce = events.get("bounce")
            opens = list(events.get("opens", ()))
            clicks = list(events.get("clicks", ()))
            unsub = events.get("unsub")
            surveys = list(events.get("surveys", ()))
            convs = list(events.get("convs", ()))
            times = [*opens, *(c[0] for c in clicks), *(s[0] for s in surveys)]
            times += [c[0] for c in convs]
            times += [e[0] for e in (bounce, unsub) if e is not None]
            return (
                vals["sid"], vals["lid"], vals["first"], vals["last"], vals["email"],
                vals["type"], vals["status"], vals["attrs"], bounce, opens, clicks, unsub,
                surveys, convs, min(times), max(times), vals["esc"],
            )  # fmt: skip

        if "start" in job.edge_kinds:
            list2 = job.lists[1][0]
            # Open in the same second as the send, at spec.start 12:00:00 AM.
            yield sub(1, {"opens": [job.send]})
            t = day0 + DAY + 9 * 3600 + 15 * 60 + 30  # start+1 9:15:30 AM
            # Two identical opens.
            yield sub(2, {"opens": [t, t]})
            # One subscriber in two lists of the job: two nodes, same open time in both.
            yield sub(3, {"opens": [t + 1800]}, lid=list1)
            yield sub(3, {"opens": [t + 1800], "clicks": [(t + 1900, 1 % len(job.links))]},
                      lid=list2)  # fmt: skip
            # XML specials, non-ASCII, empty attribute, two-data conversion, survey, unsub.
            yield sub(
                4,
                {
                    "opens": [t + 3600],
                    "clicks": [(t + 3660, 0)],
                    "convs": [
                        (
                            t + 3900,
                            0,
                            (_data(("26.36", "Dollars", "true")), _data(("2", "", "false"))),
                        )
                    ],
                    "surveys": [(t + 4000, _SPECIAL_QUESTION, _SPECIAL_ANSWER)],
                    "unsub": (t + 4100, 'Too many emails & "offers" <sic>'),
                },
                first="Zoë & <Ana>",
                last='O\'Brien "Ünal" 🎉',
                email="zoe+tag@exämple.com",
                status="Unsubscribed",
                attrs=(("Postal__Code", None), ("Favorite__Color", "Grün & <Blau> 😀")),
                esc=True,
            )
            # Empty name elements and a full <undeliverable> bounce.
            yield sub(
                5,
                {
                    "bounce": (
                        t + 60,
                        "Hard bounce",
                        "550",
                        "5.1.1 <user@example.com> unknown & gone",
                    )
                },
                first=None,
                last=None,
                status="Held",
                esc=True,
            )
        if "boundary" in job.edge_kinds:
            last_sec = day0 + DAY - 1  # B-1 11:59:59 PM
            midnight = day0 + DAY  # B 12:00:00 AM
            n0 = 10 + 10 * (job.day // WINDOW_DAYS)
            yield sub(n0 + 1, {"opens": [last_sec]})
            yield sub(n0 + 2, {"opens": [midnight], "clicks": [(midnight, 0)]})
            yield sub(n0 + 3, {"opens": [last_sec, midnight]})
        if "end" in job.edge_kinds:
            last_sec = day0 + DAY - 1  # spec.end 11:59:59 PM
            yield sub(9, {"opens": [last_sec], "unsub": (last_sec, None)}, status="Unsubscribed")

    def _write_job(
        self,
        job: _Job,
        bounds: tuple[int, int],
        *,
        buf: list[str],
        out: IO[bytes],
        counts: dict[str, int],
    ) -> None:
        lo, hi = bounds
        counts["jobs"] += 1
        counts["job_lists"] += len(job.lists)
        counts["job_links"] += len(job.links)
        s = job.summary
        esc = "start" in job.edge_kinds
        parts = [f"<job><jobID>{job.job_id}</jobID><emailSummary>"]
        for tag, value in s.items():
            parts.append(_leaf(tag, value, esc=esc, empty="short"))
        parts.append("<Lists>")
        for list_id, name in job.lists:
            parts.append(
                f"<list><list_ID>{list_id}</list_ID><list_name>{_x(name)}</list_name></list>"
            )
        parts.append("</Lists>")
        parts.extend(f"<{tag}>{v}</{tag}>" for tag, v in job.counts.items())
        parts.append("<FTAF_summary>")
        parts.extend(f"<{tag}>{v}</{tag}>" for tag, v in job.ftaf.items())
        parts.append("</FTAF_summary><email_links>")
        for url, name, ct, pct, ctr in job.links:
            parts.append(
                f"<link><URL>{_x(url)}</URL><name>{_x(name)}</name>"
                f"<click_throughs>{ct}</click_throughs><Percent>{pct}</Percent>"
                f"<Net_CTR>{ctr}</Net_CTR></link>"
            )
        parts.append("</email_links>")
        if job.conversion_summary:
            parts.append("<Conversion_Summary>")
            parts.extend(f"<{tag}>{v}</{tag}>" for tag, v in job.conversion_summary.items())
            parts.append("</Conversion_Summary>")
        else:
            parts.append("<Conversion_Summary/>")
        parts.append("</emailSummary>\n")
        buf.append("".join(parts))
        wrote_any = False
        fmt = self._fmt
        link_xml = [(_x(url), _x(name), _x(_alias(name))) for url, name, *_ in job.links]
        for sub in self._subs(job):
            f = _filter(sub, lo, hi)
            if f is None:
                continue
            if not wrote_any:
                buf.append("<subscribers>\n")
                wrote_any = True
            (sid, lid, first, last, email, typ, status, attrs,
             bounce, opens, clicks, unsub, surveys, convs, _, _, special) = f  # fmt: skip
            counts["subscribers"] += 1
            if special:
                head = (
                    f"<subscriber><subscriberID>{sid}</subscriberID><listID>{lid}</listID>"
                    + _leaf("firstname", first, esc=True)
                    + _leaf("lastname", last, esc=True, empty="short")
                    + _leaf("email", email, esc=True)
                    + f"<type>{typ}</type><status>{status}</status>"
                    + "".join(_leaf(a, v, esc=True) for a, v in attrs)
                )
            else:
                head = (
                    f"<subscriber><subscriberID>{sid}</subscriberID><listID>{lid}</listID>"
                    f"<firstname>{first}</firstname><lastname>{last}</lastname>"
                    f"<email>{email}</email><type>{typ}</type><status>{status}</status>"
                )
                for a, v in attrs:
                    head += f"<{a}>{v}</{a}>"
            buf.append(head)
            if bounce is None:
                buf.append("<undeliverable />")
            else:
                counts["bounces"] += 1
                buf.append(
                    f"<undeliverable><bouncedate>{fmt(bounce[0])}</bouncedate>"
                    f"<bouncetype>{bounce[1]}</bouncetype><smtpcode>{bounce[2]}</smtpcode>"
                    + _leaf("reason", bounce[3], esc=special)
                    + "</undeliverable>"
                )
            if opens:
                counts["opens"] += len(opens)
                buf.append("<opens>")
                for t in opens:
                    buf.append(f"<opendate>{fmt(t)}</opendate>")
                buf.append("</opens>")
            else:
                buf.append("<opens />")
            if clicks:
                counts["clicks"] += len(clicks)
                buf.append("<clicks>")
                for t, li in clicks:
                    url_x, name_x, _ = link_xml[li]
                    buf.append(
                        f"<click><clickdate>{fmt(t)}</clickdate><URL>{url_x}</URL>"
                        f"<linkname>{name_x}</linkname></click>"
                    )
                buf.append("</clicks>")
            else:
                buf.append("<clicks />")
            if unsub is None:
                buf.append("<unsubscribe />")
            else:
                counts["unsubscribes"] += 1
                buf.append(
                    f"<unsubscribe><unsubdate>{fmt(unsub[0])}</unsubdate>"
                    + _leaf("reason", unsub[1], esc=True)
                    + "</unsubscribe>"
                )
            if surveys:
                counts["survey_responses"] += len(surveys)
                buf.append("<surveyResponses>")
                for t, question, answer in surveys:
                    buf.append(
                        f"<surveyResponse><responsedate>{fmt(t)}</responsedate>"
                        f"<question>{_x(question)}</question>"
                        + _leaf("answer", answer, esc=True)
                        + "</surveyResponse>"
                    )
                buf.append("</surveyResponses>")
            else:
                buf.append("<surveyResponses />")
            if convs:
                counts["conversions"] += len(convs)
                buf.append("<conversions>")
                for t, li, data_set in convs:
                    url_x, _, alias_x = link_xml[li]
                    data_xml = "".join(
                        "<data " + " ".join(f"{k}={quoteattr(v)}" for k, v in d) + " />"
                        for d in data_set
                    )
                    buf.append(
                        f"<conversion><conversionDate>{fmt(t)}</conversionDate>"
                        f"<linkID>{li + 1}</linkID><linkAlias>{alias_x}</linkAlias>"
                        f"<linkURI>{url_x}</linkURI><data_set>{data_xml}</data_set></conversion>"
                    )
                buf.append("</conversions>")
            else:
                buf.append("<conversions />")
            buf.append("</subscriber>\n")
            if len(buf) > 4096:
                out.write("".join(buf).encode())
                buf.clear()
        buf.append("</subscribers></job>\n" if wrote_any else "<subscribers /></job>\n")


def _filter(sub: _Sub, lo: int, hi: int) -> _Sub | None:
    """The node as written for activity ``[lo, hi)``; None if it has no event there."""
    t_min, t_max = sub[14], sub[15]
    if t_max < lo or t_min >= hi:
        return None
    if lo <= t_min and t_max < hi:
        return sub
    bounce = sub[8]
    if bounce is not None and not lo <= bounce[0] < hi:
        bounce = None
    unsub = sub[11]
    if unsub is not None and not lo <= unsub[0] < hi:
        unsub = None
    opens = [t for t in sub[9] if lo <= t < hi]
    clicks = [c for c in sub[10] if lo <= c[0] < hi]
    surveys = [s for s in sub[12] if lo <= s[0] < hi]
    convs = [c for c in sub[13] if lo <= c[0] < hi]
    times = [*opens, *(c[0] for c in clicks), *(s[0] for s in surveys), *(c[0] for c in convs)]
    times += [e[0] for e in (bounce, unsub) if e is not None]
    if not times:
        return None
    return (
        sub[0], sub[1], sub[2], sub[3], sub[4], sub[5], sub[6], sub[7],
        bounce, opens, clicks, unsub, surveys, convs, min(times), max(times), sub[16],
    )  # fmt: skip


def _data(item: tuple[str, str, str]) -> _Data:
    return (("amt", item[0]), ("unit", item[1]), ("accumulate", item[2]))


def _alias(link_name: str) -> str:
    return link_name.lower().replace(" ", "_")


_CORRUPTION = (
    "<job><jobID>0</jobID><emailSummary><EmailName>corrupt &bogus; entity</EmailName></job>\n"
)
_SPECIAL_EMAIL_NAME = 'Spring "Sale" & <Offers> \u2013 café ☕'
_SPECIAL_SUBJECT = 'Save 20% & more: "Déjà vu" <today> 🎉'
_SPECIAL_FROM = "Zoë & Co. <Marketing>"
_SPECIAL_URL = 'https://www.example.com/café?a=1&b=<2>&c="x"&emoji=🎉'
_SPECIAL_LINK_NAME = 'Café & "Croissants" 🥐'
_SPECIAL_QUESTION = "Rate us (1 < 5) & tell us why?"
_SPECIAL_ANSWER = "Très bien & <merci> 👍"
