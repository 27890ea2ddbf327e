"""Seeded generator of Acoustic Campaign email events, as BEX files and Raw Recipient Data ZIPs.

The generator is the sandbox's ground truth: it writes the files Acoustic would drop in the org
admin's SFTP folder (``write_bex_file``, ``write_rrde_zip``) and returns the very same content as
plain dicts (``bex_truth``, ``rrde_truth``), so tests compare what the tap emitted with what the
vendor "sent", row for row.  ``docs/acoustic.md`` is the format followed.

Model:

* Time is UTC.  The data covers ``[spec.start 00:00Z, spec.end + 1 day 00:00Z)``; every hour of it
  holds exactly ``events_per_hour`` ordinary events (plus the edge cases below), drawn from that
  hour's own ``random.Random`` seeded by ``(seed, hour)``.  Any window is therefore regenerated
  cheaply and identically, nothing is held in memory across hours, and ``events(a, b)`` followed
  by ``events(b, c)`` is exactly ``events(a, c)`` (windows are half-open).
* An event is one of the six BEX codes (about 40% sends, 28% opens, 12% clicks, 6% bounces, 4%
  opt-outs, 10% suppressions) of a recipient (a pool of ``spec.recipients``) for a mailing (a
  pool of 24, each with one of the five mailing types as ``sendType``).  Columns that do not apply
  to the event's type are empty (``userAgent`` only on opens and clicks, ``clickUrl`` only on
  clicks, ...).  ``eventId`` is ``<hour hex>-<ordinal hex>-<seed hex>``, unique in the dataset.
* The database's custom columns are ``spec.custom_columns`` (values per recipient; a requested
  column the database does not have is written empty).
* BEX rows are the 25 seed-page columns, then the requested custom columns.  Raw Recipient Data
  rows re-express the same events: ``Event Type`` Sent / Open / Click Through / Hard Bounce /
  Soft Bounce / Opt Out / Suppressed, ``Event Timestamp`` ``MM/DD/YYYY HH:MM:SS`` in the org's
  zone, ``Recipient Id`` = RECIPIENT_ID, ``Mailing Id`` = messageId, ``Report Id`` = reportId,
  ``Campaign Id`` = messageGroupId, ``Body Type`` = docType, ``Click Name`` = urlDescription,
  ``URL`` = clickUrl, ``Suppression Reason`` for suppressions; conversion columns are empty.

Delimited output (all formats): ``csv.writer`` with the format's delimiter, ``"`` as quote
character, minimal quoting (fields holding the delimiter, a quote, CR or LF are quoted, quotes
doubled), records ended by CRLF, UTF-8 without BOM, a header row first.

Edge cases (``edge_cases=True``) are listed in ``AcousticDataset.edge_case_catalog``.
"""

from __future__ import annotations

import io
import random
import sys
import zipfile
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import IO, Any, BinaryIO
from zoneinfo import ZoneInfo

__all__ = [
    "BEX_COLUMNS",
    "DEFAULT_EXPORT_FILE_NAME",
    "EVENT_TYPES",
    "FILE_FORMATS",
    "MAILING_TYPES",
    "RRDE_COLUMNS",
    "RRDE_EVENT_WORDS",
    "AcousticDataSpec",
    "AcousticDataset",
    "WrittenFile",
    "bex_file_name",
]

UTC = timezone.utc
HOUR = 3600
DAY = 86_400

BEX_COLUMNS = (
    "Email", "RECIPIENT_ID", "ENCODED_RECIPIENT_ID", "contactId", "code", "messageId",
    "userAgent", "messageName", "mailingTemplateId", "subjectLine", "docType", "reportId",
    "sendType", "bounceType", "urlDescription", "clickUrl", "optOutDetails", "messageGroupId",
    "programId", "timestamp", "originatedFrom", "eventId", "externalSystemName",
    "externalSystemReferenceId", "trackingCode",
)  # fmt: skip
RRDE_COLUMNS = (
    "Recipient Id", "Recipient Type", "Mailing Id", "Report Id", "Campaign Id", "Email",
    "Event Type", "Event Timestamp", "Body Type", "Content Id", "Click Name", "URL",
    "Conversion Action", "Conversion Detail", "Conversion Amount", "Suppression Reason",
)  # fmt: skip
EVENT_TYPES = (
    "emailSend",
    "emailOpen",
    "emailClick",
    "emailBounce",
    "emailOptOut",
    "emailSuppressed",
)
MAILING_TYPES = ("SendExperience", "Programs", "AMG", "AutoResponder", "ABTest")
FILE_FORMATS = {"CSV": (",", "csv"), "PSV": ("|", "psv"), "TSV": ("\t", "tsv")}
DEFAULT_EXPORT_FILE_NAME = "Recipient Event Bulk Export_"
#: BEX code -> the Raw Recipient Data ``Event Type`` words it can appear as.
RRDE_EVENT_WORDS: dict[str, tuple[str, ...]] = {
    "emailSend": ("Sent",),
    "emailOpen": ("Open",),
    "emailClick": ("Click Through",),
    "emailBounce": ("Hard Bounce", "Soft Bounce"),
    "emailOptOut": ("Opt Out",),
    "emailSuppressed": ("Suppressed",),
}

# Column indexes of a BEX row.
_EMAIL, _RID, _ENC, _CONTACT, _CODE, _MSG, _UA, _MNAME, _TMPL, _SUBJ, _DOC, _REPORT = range(12)
_SENDTYPE, _BOUNCE, _URLDESC, _URL, _OPTOUT, _GROUP, _PROGRAM, _TS, _ORIGIN, _EVID = range(12, 22)
_EXTNAME, _EXTREF, _TRACK = range(22, 25)
_NCOLS = len(BEX_COLUMNS)

# Cumulative weights of the six codes.
_TYPE_CUTS = (0.40, 0.68, 0.80, 0.86, 0.90)
_N_MAILINGS = 24
_MMSS_Z = tuple(f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60))
_MMSS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))

_FIRST = (
    "ana", "ben", "chloe", "david", "emma", "farid", "grace", "hiro", "ines", "jack", "kofi",
    "lena", "miguel", "nora", "oskar", "priya", "quinn", "rosa", "sven", "tomas", "uma",
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "mail.example.net", "example.co.uk")
_REGIONS = ("New York", "Bayern", "Île-de-France", "São Paulo", "Ontario", "Kraków", "Tōkyō")
_MAILING_NAMES = (
    "Weekly News", "Spring Sale", "Welcome Series", "Cart Reminder", "Product Launch",
    "Winter Offers", "Loyalty Update", "Event Invite",
)  # fmt: skip
_SUBJECTS = (
    "This week at Example", "Up to 30% off, this weekend only", "Welcome aboard!",
    "You left something behind", "Meet the new Example One", "Cosy offers for cold days",
    "Your points balance", "You're invited",
)  # fmt: skip
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Microsoft Outlook 16.0.17126; Pro",
    "Mozilla/5.0 (compatible; GoogleImageProxy)",
)
_LINKS = (
    ("Shop now", "https://www.example.com/shop?utm_source=acoustic&utm_medium=email"),
    ("Read more", "https://www.example.com/blog/2024/01/news"),
    ("View in browser", "https://www.example.com/view?m=1"),
    ("Unsubscribe", "https://www.example.com/unsubscribe"),
    ("Événements", "https://www.example.com/fr/événements"),
)
_OPT_OUT_DETAILS = ("Unsubscribed via link", "List-Unsubscribe header", "Preference center")
_SUPPRESSION_REASONS = ("Global suppression list", "Domain suppression", "Invalid address")
_TRACKING = ("spring-2024", "newsletter-w02", "vip")

_SPECIAL_EMAIL = "zoë.o'brien+tag@exämple.com"
_SPECIAL_SUBJECT = "Save 20%, today | only\ttonight"
_SPECIAL_NAME = 'The "Big" Sale: Café ☕ Grüße 🎉'
_SPECIAL_OPT_OUT = "Too many emails.\nPlease stop."
_SPECIAL_UA = 'Mozilla/5.0 "Quoted" Agent\r\nSecond line'
_SPECIAL_URL_DESC = 'Café, "Croissants" 🥐'
_SPECIAL_URL = "https://www.example.com/café?a=1,b=2|c=3&emoji=🎉"
_SPECIAL_REGION = 'Paris, Île-de-France | FR\t"Nord"'

_Row = list[str]


def bex_file_name(
    export_file_name: str,
    rotated_at: datetime,
    job_frequency: int,
    file_format: str = "CSV",
    channel: str = "Email",
) -> str:
    """``<exportFileName><channel>_<yyyyMMddHHmmss>_<jobFrequency>.<ext>`` (rotation time, UTC)."""
    ext = FILE_FORMATS[file_format.upper()][1]
    stamp = _as_utc(rotated_at).strftime("%Y%m%d%H%M%S")
    return f"{export_file_name}{channel}_{stamp}_{job_frequency}.{ext}"


@dataclass(frozen=True)
class AcousticDataSpec:
    """What the seeded database holds.  The same spec always gives byte-identical files."""

    seed: int = 1
    start: date = date(2024, 1, 1)  # first day of events (UTC)
    end: date = date(2024, 1, 7)  # last day of events (inclusive, UTC)
    events_per_hour: int = 40
    contact_source_id: str = "423251"
    custom_columns: tuple[str, ...] = ("CustomerID", "Region")  # the database's columns
    edge_cases: bool = True
    recipients: int = 2000
    timezone: str = "America/New_York"  # org zone: places the RRDE day-boundary edge cases


@dataclass
class WrittenFile:
    """What a writer produced: data rows, bytes, and where the rows start.

    ``malformed_line`` is the 1-based physical line (the header is line 1; a quoted line break
    inside a field counts) where the injected bad row starts, as ``csv.reader.line_num`` counts.
    ``row_offsets`` (only when asked for) holds the byte offset of the header and of every row
    that follows, bad row included, then the file size.
    """

    rows: int = 0
    size: int = 0
    malformed_line: int | None = None
    row_offsets: list[int] = field(default_factory=list)


class AcousticDataset:
    """Ground truth and file writers for one :class:`AcousticDataSpec`."""

    #: Human-readable list of the deterministic edge cases (``edge_cases=True``).  Times are
    #: relative to ``spec.start`` 00:00:00Z; cases outside the data range are left out.
    edge_case_catalog = (
        "00:00:00Z: an emailSend in the very first second (first second of the first period)",
        "01:10:00-01:12:00Z: events of a special recipient whose Email is non-ASCII "
        "(zoë.o'brien+tag@exämple.com) and whose Region holds a comma, a pipe, a tab and quotes: "
        "a send whose subjectLine holds a comma, a pipe and a tab and whose messageName holds "
        "double quotes, é, ☕ and 🎉; an opt-out whose optOutDetails holds a LF line break; an "
        "open whose userAgent holds quotes and a CRLF line break; a click whose urlDescription "
        "and clickUrl hold the delimiters, quotes, é and emoji; trackingCode a lone double quote",
        "02:05:00Z (a send and an open in the same second) and 02:20:00Z (a click): rows with "
        "an empty eventId",
        "03:30:15Z: two identical emailOpen rows (every field equal, eventId empty)",
        "day 2 00:00:00Z: an emailClick exactly on a rotation boundary of every jobFrequency "
        "(it belongs to the file of the period that starts there); 23:59:59Z before it: an "
        "emailOpen in the earlier file (12:00:00Z / 11:59:59Z when the spec has one day)",
        "day 2 00:00:00 in spec.timezone (05:00:00Z for New York in winter) and the second "
        "before it: an emailSend each (Raw Recipient Data day boundary)",
        "the last second of spec.end (23:59:59Z): an emailSend",
    )

    def __init__(self, spec: AcousticDataSpec) -> None:
        if spec.end < spec.start:
            raise ValueError("spec.end is before spec.start")
        if spec.events_per_hour < 0 or spec.recipients < 1:
            raise ValueError("spec needs events_per_hour >= 0 and recipients >= 1")
        self.spec = spec
        self.t0 = datetime.combine(spec.start, time(0), tzinfo=UTC)
        self.hours = ((spec.end - spec.start).days + 1) * 24
        self.data_end = self.t0 + timedelta(hours=self.hours)
        self._hour_salt = (spec.seed & 0xFFFF_FFFF) << 24
        self._id_suffix = f"-{spec.seed & 0xFFFF:04x}"
        self._recipients = self._make_recipients()
        self._mailings = self._make_mailings()
        self._templates = [
            [self._template(m, code) for code in EVENT_TYPES] for m in range(_N_MAILINGS)
        ]
        self._edges: dict[int, list[tuple[int, int, _Row]]] = (
            self._make_edges() if spec.edge_cases else {}
        )
        self._custom_cache: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        self._format_cache: dict[tuple[str, tuple[str, ...]], _LineFormat] = {}

    # ------------------------------------------------------------------------------ public API
    @classmethod
    def sized(
        cls,
        total_events: int,
        *,
        seed: int = 1,
        start: date = date(2024, 1, 1),
        end: date = date(2024, 1, 7),
        contact_source_id: str = "423251",
        custom_columns: tuple[str, ...] = ("CustomerID", "Region"),
        edge_cases: bool = True,
    ) -> AcousticDataset:
        """A dataset whose whole range holds about ``total_events`` events."""
        probe = cls(
            AcousticDataSpec(
                seed=seed, start=start, end=end, events_per_hour=0,
                custom_columns=custom_columns, edge_cases=edge_cases,
            )
        )  # fmt: skip
        edges = sum(len(v) for v in probe._edges.values())
        per_hour = max(1, round((total_events - edges) / probe.hours))
        return cls(
            AcousticDataSpec(
                seed=seed,
                start=start,
                end=end,
                events_per_hour=per_hour,
                contact_source_id=contact_source_id,
                custom_columns=custom_columns,
                edge_cases=edge_cases,
            )
        )

    def total_events(self) -> int:
        """Events in the whole data range (no filter)."""
        edges = sum(len(v) for v in self._edges.values())
        return self.hours * self.spec.events_per_hour + edges

    @staticmethod
    def bex_header(custom_columns: Sequence[str] = ()) -> list[str]:
        """The header of a BEX file: the 25 seed-page columns, then the custom columns."""
        return [*BEX_COLUMNS, *custom_columns]

    @staticmethod
    def rrde_header(custom_columns: Sequence[str] = ()) -> list[str]:
        """The header of a Raw Recipient Data CSV."""
        return [*RRDE_COLUMNS, *custom_columns]

    def events(
        self,
        start: datetime,
        end: datetime,
        *,
        event_types: Collection[str] | None = None,
        mailing_types: Collection[str] | None = None,
    ) -> Iterator[dict[str, str]]:
        """Events with ``start <= timestamp < end`` (UTC; naive means UTC), in time order.

        Each is a dict of the 25 BEX columns plus every custom column of the database.
        """
        header = self.bex_header(self.spec.custom_columns)
        for _, rows in self._batches(
            start, end, self.spec.custom_columns, event_types, mailing_types
        ):
            for row in rows:
                yield dict(zip(header, row, strict=True))

    def count_events(
        self,
        start: datetime,
        end: datetime,
        *,
        event_types: Collection[str] | None = None,
        mailing_types: Collection[str] | None = None,
    ) -> int:
        """How many events ``events`` would give."""
        return sum(
            len(rows) for _, rows in self._batches(start, end, (), event_types, mailing_types)
        )

    def bex_rows(
        self,
        start: datetime,
        end: datetime,
        *,
        event_types: Collection[str] | None = None,
        mailing_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
    ) -> Iterator[list[str]]:
        """The data rows of a BEX file of period ``[start, end)``, as lists of strings."""
        for _, rows in self._batches(start, end, custom_columns, event_types, mailing_types):
            yield from rows

    def bex_truth(
        self,
        start: datetime,
        end: datetime,
        *,
        event_types: Collection[str] | None = None,
        mailing_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
    ) -> list[dict[str, str]]:
        """What a BEX file of ``[start, end)`` holds: one header-keyed dict per data row.

        Equal to ``csv.DictReader`` over the written file.  Rows without ``eventId`` stay in the
        list (two of them are identical): key them like the tap does (hash + ordinal).
        """
        header = self.bex_header(custom_columns)
        return [
            dict(zip(header, row, strict=True))
            for row in self.bex_rows(
                start,
                end,
                event_types=event_types,
                mailing_types=mailing_types,
                custom_columns=custom_columns,
            )
        ]

    def write_bex_file(
        self,
        dest: Path | IO[bytes],
        start: datetime,
        end: datetime,
        *,
        fmt: str = "CSV",
        event_types: Collection[str] | None = None,
        mailing_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
        malformed: bool = False,
        track_rows: bool = False,
    ) -> WrittenFile:
        """Write the BEX file of period ``[start, end)``; streams, flat memory.

        With ``malformed`` one extra row with the wrong number of fields is written before the
        middle data row (before the header's successor if the file has no data row); its line
        is returned.  It is not an event: truth stays ``bex_truth``.
        """
        delimiter = FILE_FORMATS[fmt.upper()][0]
        line_format = self._line_format(delimiter, custom_columns)
        batches = self._batches(start, end, custom_columns, event_types, mailing_types, line_format)
        bad_at = -1
        if malformed:
            total = sum(
                len(rows) for _, rows in self._batches(start, end, (), event_types, mailing_types)
            )
            bad_at = total // 2
        return _write_lines(
            dest,
            line_format.line(self.bex_header(custom_columns)),
            batches,
            bad_at=bad_at,
            bad_line=line_format.line(["malformed@example.com", "0", "broken row", "emailOpen"]),
            track=track_rows,
        )

    def bex_file_bytes(
        self,
        start: datetime,
        end: datetime,
        *,
        fmt: str = "CSV",
        event_types: Collection[str] | None = None,
        mailing_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
    ) -> bytes:
        """``write_bex_file`` into memory (small periods, tests)."""
        buf = io.BytesIO()
        self.write_bex_file(
            buf,
            start,
            end,
            fmt=fmt,
            event_types=event_types,
            mailing_types=mailing_types,
            custom_columns=custom_columns,
        )
        return buf.getvalue()

    def rrde_rows(
        self,
        activity_start: date | datetime,
        activity_end: date | datetime,
        *,
        tz: str | None = None,
        event_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
    ) -> Iterator[list[str]]:
        """Raw Recipient Data rows of events whose local time is within the activity range.

        The range is inclusive at both ends, in ``tz`` (default ``spec.timezone``): a ``date``
        start means 00:00:00 and a ``date`` end 23:59:59 of that day; naive datetimes are local.
        ``event_types`` holds BEX codes and/or RRDE words (``Hard Bounce``); None means all.
        """
        for rows in self._rrde_batches(
            activity_start, activity_end, tz, event_types, custom_columns, None
        ):
            yield from rows

    def _rrde_batches(
        self,
        activity_start: date | datetime,
        activity_end: date | datetime,
        tz: str | None,
        event_types: Collection[str] | None,
        custom_columns: Sequence[str],
        line_format: _LineFormat | None,
    ) -> Iterator[list[Any]]:
        """Per UTC hour, RRDE rows (lists) or delimited lines (with ``line_format``)."""
        zone = ZoneInfo(tz or self.spec.timezone)
        lo, hi = _local_range(activity_start, activity_end, zone)
        words = _rrde_words(event_types)
        q = line_format.quote if line_format is not None else None
        d = line_format.delimiter if line_format is not None else ""
        for hour_start, rows in self._batches(lo, hi, custom_columns, None, None):
            local = _LocalClock(hour_start, zone)
            out: list[Any] = []
            keep = out.append
            for row in rows:
                code = row[_CODE]
                if code == "emailBounce":
                    word = "Hard Bounce" if row[_BOUNCE] == "Hard" else "Soft Bounce"
                else:
                    word = _RRDE_WORD[code]
                if words is not None and word not in words:
                    continue
                body = row[_DOC] if code in _BODY_CODES else ""
                reason = (
                    _SUPPRESSION_REASONS[int(row[_RID]) % 3] if code == "emailSuppressed" else ""
                )
                if q is None:
                    keep(
                        [
                            row[_RID], "Normal", row[_MSG], row[_REPORT], row[_GROUP],
                            row[_EMAIL], word, local.format(row[_TS]), body, "",
                            row[_URLDESC], row[_URL], "", "", "", reason, *row[_NCOLS:],
                        ]
                    )  # fmt: skip
                else:
                    custom = "".join([d + q(v) for v in row[_NCOLS:]]) if len(row) > _NCOLS else ""
                    keep(
                        f"{row[_RID]}{d}Normal{d}{row[_MSG]}{d}{row[_REPORT]}{d}{row[_GROUP]}{d}"
                        f"{q(row[_EMAIL])}{d}{word}{d}{local.format(row[_TS])}{d}{body}{d}{d}"
                        f"{q(row[_URLDESC])}{d}{q(row[_URL])}{d}{d}{d}{d}{q(reason)}{custom}\r\n"
                    )
            yield out

    def rrde_truth(
        self,
        activity_start: date | datetime,
        activity_end: date | datetime,
        *,
        tz: str | None = None,
        event_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
    ) -> list[dict[str, str]]:
        """What a Raw Recipient Data CSV holds: one header-keyed dict per row."""
        header = self.rrde_header(custom_columns)
        return [
            dict(zip(header, row, strict=True))
            for row in self.rrde_rows(
                activity_start,
                activity_end,
                tz=tz,
                event_types=event_types,
                custom_columns=custom_columns,
            )
        ]

    def write_rrde_zip(
        self,
        dest: Path | BinaryIO,
        activity_start: date | datetime,
        activity_end: date | datetime,
        *,
        tz: str | None = None,
        event_types: Collection[str] | None = None,
        custom_columns: Sequence[str] = (),
        member_name: str = "Raw Recipient Data Export.csv",
        delimiter: str = ",",
    ) -> int:
        """Write the export ZIP (one deflated CSV member); return its data rows."""
        info = zipfile.ZipInfo(member_name, date_time=(2024, 1, 8, 10, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        if sys.version_info >= (3, 13):
            info.compress_level = 1
        else:
            info._compresslevel = 1  # type: ignore[attr-defined]
        big = self.hours * self.spec.events_per_hour * 400 > 1_500_000_000
        line_format = self._line_format(delimiter, ())
        count = 0
        with (
            zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf,
            zf.open(info, "w", force_zip64=big) as out,
        ):
            out.write(line_format.line(self.rrde_header(custom_columns)).encode("utf-8"))
            for lines in self._rrde_batches(
                activity_start, activity_end, tz, event_types, custom_columns, line_format
            ):
                count += len(lines)
                out.write("".join(lines).encode("utf-8"))
        return count

    # ------------------------------------------------------------------------------ internals
    def _batches(
        self,
        start: datetime,
        end: datetime,
        custom_columns: Sequence[str],
        event_types: Collection[str] | None,
        mailing_types: Collection[str] | None,
        line_format: _LineFormat | None = None,
    ) -> Iterator[tuple[datetime, list[Any]]]:
        """``(hour start, items)`` for every hour overlapping ``[start, end)``, filtered.

        Items are row lists, or delimited lines with ``line_format``.
        """
        lo = int((_as_utc(start) - self.t0).total_seconds())
        hi = int((_as_utc(end) - self.t0).total_seconds())
        lo, hi = max(lo, 0), min(hi, self.hours * HOUR)
        if hi <= lo:
            return
        if event_types:
            unknown = set(event_types) - set(EVENT_TYPES)
            if unknown:
                raise ValueError(f"unknown event types: {sorted(unknown)}")
        if mailing_types:
            unknown = set(mailing_types) - set(MAILING_TYPES)
            if unknown:
                raise ValueError(f"unknown mailing types: {sorted(unknown)}")
        codes = frozenset(event_types) if event_types else None
        kinds = frozenset(mailing_types) if mailing_types else None
        custom = self._custom_values(custom_columns)
        for h in range(lo // HOUR, (hi - 1) // HOUR + 1):
            secs, items = self._hour(h, custom, codes, kinds, line_format)
            base = h * HOUR
            if base < lo or base + HOUR > hi:
                items = [item for s, item in zip(secs, items, strict=True) if lo <= base + s < hi]
            yield self.t0 + timedelta(seconds=base), items

    def _hour(
        self,
        h: int,
        custom: list[tuple[str, ...]],
        codes: frozenset[str] | None,
        kinds: frozenset[str] | None,
        line_format: _LineFormat | None = None,
    ) -> tuple[list[int], list[Any]]:
        """Hour ``h``'s events (filtered) in time order, with their seconds within the hour.

        Items are row lists, or (with ``line_format``) finished delimited lines: the fast path
        for writers, assembled from pre-quoted pieces instead of going through ``csv.writer``.
        Both come from the same draws, so files and truth agree.
        """
        rng = random.Random(self._hour_salt | h)
        r = rng.random
        n = self.spec.events_per_hour
        secs = sorted([int(r() * HOUR) for _ in range(n)])
        prefix = (self.t0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:")
        id_prefix = f"{h:05x}-"
        suffix = self._id_suffix
        recipients = self._recipients
        templates = self._templates
        n_rec = len(recipients) - 1  # the last one is the edge cases' special recipient
        n_ua, n_links = len(_USER_AGENTS), len(_LINKS)
        mmss = _MMSS_Z
        filtered = codes is not None or kinds is not None
        out_secs: list[int] = []
        out: list[Any] = []
        keep_s = out_secs.append
        keep = out.append
        lf = line_format
        uas: Sequence[str]
        links: Sequence[tuple[str, str]]
        opts: Sequence[str]
        tracks: Sequence[str]
        if lf is None:
            uas, links, opts, tracks = _USER_AGENTS, _LINKS, _OPT_OUT_DETAILS, _TRACKING
            d = ""
            rec_q: Sequence[str] = ()
            cust_q: Sequence[str] = ()
            tmpl_q: Sequence[Sequence[tuple[str, str, str, str]]] = ()
        else:
            uas, links, opts, tracks = lf.uas, lf.links, lf.opt_outs, lf.tracking
            d, rec_q, cust_q, tmpl_q = lf.delimiter, lf.recipients, lf.custom, lf.templates
        for i, s in enumerate(secs):
            t = bisect_right(_TYPE_CUTS, r())
            rec = int(r() * n_rec)
            m = int(r() * _N_MAILINGS)
            v = r()
            w = r()
            if filtered:
                tmpl = templates[m][t]
                if (codes is not None and tmpl[_CODE] not in codes) or (
                    kinds is not None and tmpl[_SENDTYPE] not in kinds
                ):
                    continue
            ua = bounce = url_desc = url = opt = ext_name = ext_ref = track = ""
            if t == 1:
                ua = uas[int(v * n_ua)]
            elif t == 2:
                ua = uas[int(v * n_ua)]
                url_desc, url = links[int(w * n_links)]
            elif t == 3:
                bounce = "Hard" if v < 0.6 else "Soft"
            elif t == 4:
                opt = opts[int(v * 3)]
            if w < 0.05:
                ext_name = "Salesforce"
                ext_ref = f"00Q{rec:09d}"
            elif w > 0.85:
                track = tracks[int(v * 3)]
            if lf is None:
                row = templates[m][t][:]
                row[0:4] = recipients[rec]
                row[_UA] = ua
                row[_BOUNCE] = bounce
                row[_URLDESC] = url_desc
                row[_URL] = url
                row[_OPTOUT] = opt
                row[_TS] = prefix + mmss[s]
                row[_EVID] = f"{id_prefix}{i:05x}{suffix}"
                row[_EXTNAME] = ext_name
                row[_EXTREF] = ext_ref
                row[_TRACK] = track
                row += custom[rec]
                keep(row)
            else:
                head, mid, tail, origin = tmpl_q[m][t]
                keep(
                    f"{rec_q[rec]}{d}{head}{d}{ua}{d}{mid}{d}{bounce}{d}{url_desc}{d}{url}{d}"
                    f"{opt}{d}{tail}{d}{prefix}{mmss[s]}{d}{origin}{d}{id_prefix}{i:05x}{suffix}"
                    f"{d}{ext_name}{d}{ext_ref}{d}{track}{cust_q[rec]}\r\n"
                )
            keep_s(s)
        edges = self._edges.get(h)
        if edges:
            merged: list[tuple[int, int, Any]] = list(
                zip(out_secs, range(len(out)), out, strict=True)
            )
            for k, (s, rec, base_row) in enumerate(edges):
                if codes is not None and base_row[_CODE] not in codes:
                    continue
                if kinds is not None and base_row[_SENDTYPE] not in kinds:
                    continue
                full = [*base_row, *custom[rec]]
                item: Any = full if lf is None else lf.line(full)
                merged.append((s, len(out) + k, item))
            merged.sort(key=lambda entry: (entry[0], entry[1]))
            out_secs = [entry[0] for entry in merged]
            out = [entry[2] for entry in merged]
        return out_secs, out

    def _line_format(self, delimiter: str, columns: Sequence[str]) -> _LineFormat:
        key = (delimiter, tuple(columns))
        found = self._format_cache.get(key)
        if found is None:
            found = _LineFormat(self, delimiter, self._custom_values(columns))
            self._format_cache[key] = found
        return found

    def _custom_values(self, columns: Sequence[str]) -> list[tuple[str, ...]]:
        """Per recipient, the values of ``columns`` (empty for columns the database lacks)."""
        key = tuple(columns)
        found = self._custom_cache.get(key)
        if found is None:
            found = self._custom_cache[key] = self._make_custom_values(key)
        return found

    def _make_custom_values(self, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
        if not columns:
            return [()] * len(self._recipients)
        known = set(self.spec.custom_columns)
        n = len(self._recipients)
        special = n - 1
        per_column: list[list[str]] = []
        for name in columns:
            if name not in known:
                per_column.append([""] * n)
            elif name == "CustomerID":
                per_column.append([f"CUST-{i + 1:06d}" for i in range(n)])
            elif name == "Region":
                values = [_REGIONS[(i * 7) % len(_REGIONS)] for i in range(n)]
                values[special] = _SPECIAL_REGION
                per_column.append(values)
            else:
                per_column.append([f"{name} {i + 1}" for i in range(n)])
        return list(zip(*per_column, strict=True))

    def _make_recipients(self) -> list[tuple[str, str, str, str]]:
        rng = random.Random(f"acoustic:{self.spec.seed}:recipients")
        r = rng.random
        out: list[tuple[str, str, str, str]] = []
        for i in range(self.spec.recipients):
            rid = str(31_000_000 + i * 37)
            email = f"{_FIRST[i % len(_FIRST)]}.{i}@{_DOMAINS[(i // 3) % len(_DOMAINS)]}"
            encoded = f"{int(r() * 0xFFFF_FFFF):08x}S{int(r() * 0xFFFF):04X}"
            contact = (
                f"{int(r() * 0xFFFF_FFFF):08x}-{int(r() * 0xFFFF):04x}-4{int(r() * 0xFFF):03x}-"
                f"a{int(r() * 0xFFF):03x}-{int(r() * 0xFFFF_FFFF_FFFF):012x}"
            )
            out.append((email, rid, encoded, contact))
        special_id = str(31_000_000 + self.spec.recipients * 37)
        out.append(
            (_SPECIAL_EMAIL, special_id, "ffffffffS0001", "00000000-0000-4000-a000-000000000001")
        )
        return out

    def _make_mailings(self) -> list[dict[str, str]]:
        out = []
        for m in range(_N_MAILINGS):
            send_type = MAILING_TYPES[m % len(MAILING_TYPES)]
            k = m % len(_MAILING_NAMES)
            out.append(
                {
                    "messageId": str(8_000_000 + m * 101),
                    "messageName": f"{_MAILING_NAMES[k]} #{m + 1}",
                    "mailingTemplateId": str(50_000 + m),
                    "subjectLine": _SUBJECTS[k],
                    "reportId": str(900_000 + m * 7),
                    "sendType": send_type,
                    "messageGroupId": str(4000 + m // 3),
                    "programId": str(70_000 + m) if send_type == "Programs" else "",
                    "originatedFrom": "API" if m % 4 == 3 else "Campaign",
                }
            )
        return out

    def _template(self, m: int, code: str) -> _Row:
        mailing = self._mailings[m]
        row = [""] * _NCOLS
        row[_CODE] = code
        row[_MSG] = mailing["messageId"]
        row[_MNAME] = mailing["messageName"]
        row[_TMPL] = mailing["mailingTemplateId"]
        row[_SUBJ] = mailing["subjectLine"]
        row[_REPORT] = mailing["reportId"]
        row[_SENDTYPE] = mailing["sendType"]
        row[_GROUP] = mailing["messageGroupId"]
        row[_PROGRAM] = mailing["programId"]
        row[_ORIGIN] = mailing["originatedFrom"]
        if code in _BODY_CODES:
            row[_DOC] = "HTML"
        return row

    def _make_edges(self) -> dict[int, list[tuple[int, int, _Row]]]:
        """Edge-case events by hour: ``(second within the hour, recipient, row)``."""
        special = len(self._recipients) - 1
        end = self.hours * HOUR
        edges: dict[int, list[tuple[int, int, _Row]]] = {}
        taken: set[int] = set()
        n = 0

        def add(t: int, code: str, rec: int, *, event_id: str | None = None, **fields: str) -> None:
            nonlocal n
            if not 0 <= t < end:
                return
            n += 1
            row = self._template(0, code)
            row[0:4] = self._recipients[rec]
            row[_TS] = (self.t0 + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")
            row[_EVID] = f"edge-{n:02d}{self._id_suffix}" if event_id is None else event_id
            if code in ("emailOpen", "emailClick") and "userAgent" not in fields:
                row[_UA] = _USER_AGENTS[0]
            if code == "emailClick" and "clickUrl" not in fields:
                row[_URLDESC], row[_URL] = _LINKS[0]
            if code == "emailBounce":
                row[_BOUNCE] = "Hard"
            for name, value in fields.items():
                row[BEX_COLUMNS.index(name)] = value
            edges.setdefault(t // HOUR, []).append((t % HOUR, rec, row))
            taken.add(t)

        add(0, "emailSend", 1)
        add(
            HOUR + 600,
            "emailSend",
            special,
            subjectLine=_SPECIAL_SUBJECT,
            messageName=_SPECIAL_NAME,
        )
        add(HOUR + 630, "emailOptOut", special, optOutDetails=_SPECIAL_OPT_OUT)
        add(HOUR + 660, "emailOpen", special, userAgent=_SPECIAL_UA, trackingCode='"')
        add(
            HOUR + 720,
            "emailClick",
            special,
            urlDescription=_SPECIAL_URL_DESC,
            clickUrl=_SPECIAL_URL,
            externalSystemName="Zoë's CRM",
            externalSystemReferenceId="ref|1,2",
        )
        add(2 * HOUR + 300, "emailSend", 2, event_id="")
        add(2 * HOUR + 300, "emailOpen", 2, event_id="")
        add(2 * HOUR + 1200, "emailClick", 3, event_id="")
        add(3 * HOUR + 1815, "emailOpen", 4, event_id="")
        add(3 * HOUR + 1815, "emailOpen", 4, event_id="")
        boundary = DAY if self.hours > 24 else 12 * HOUR
        add(boundary - 1, "emailOpen", 5)
        add(boundary, "emailClick", 5)
        zone = ZoneInfo(self.spec.timezone)
        local_midnight = datetime.combine(self.spec.start + timedelta(days=1), time(0), zone)
        t_local = int((local_midnight.astimezone(UTC) - self.t0).total_seconds())
        if t_local not in taken and t_local - 1 not in taken:
            add(t_local - 1, "emailSend", 6)
            add(t_local, "emailSend", 7)
        add(end - 1, "emailSend", 8)
        return edges


_BODY_CODES = frozenset(("emailSend", "emailOpen", "emailClick"))
_RRDE_WORD = {
    "emailSend": "Sent",
    "emailOpen": "Open",
    "emailClick": "Click Through",
    "emailOptOut": "Opt Out",
    "emailSuppressed": "Suppressed",
}


class _LocalClock:
    """Format the ``…T..:MM:SSZ`` timestamps of one UTC hour as local ``MM/DD/YYYY HH:MM:SS``."""

    def __init__(self, hour_start: datetime, zone: ZoneInfo) -> None:
        self.zone = zone
        first = hour_start.astimezone(zone)
        last = (hour_start + timedelta(seconds=HOUR - 1)).astimezone(zone)
        offset = first.utcoffset()
        self.fast = (
            offset is not None and offset == last.utcoffset() and offset.total_seconds() % HOUR == 0
        )
        self.prefix = first.strftime("%m/%d/%Y %H:")

    def format(self, iso_z: str) -> str:
        if self.fast:
            return self.prefix + iso_z[14:19]
        moment = datetime.strptime(iso_z, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return moment.astimezone(self.zone).strftime("%m/%d/%Y %H:%M:%S")


def _rrde_words(event_types: Collection[str] | None) -> frozenset[str] | None:
    if not event_types:
        return None
    words: set[str] = set()
    for item in event_types:
        words.update(RRDE_EVENT_WORDS.get(item, (item,)))
    return frozenset(words)


def _local_range(
    start: date | datetime, end: date | datetime, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """UTC ``[lo, hi)`` of an inclusive local range (whole days for dates, seconds otherwise)."""

    def local(value: date | datetime, *, is_end: bool) -> datetime:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=zone)
            return moment + timedelta(seconds=1) if is_end else moment
        day = value + timedelta(days=1) if is_end else value
        return datetime.combine(day, time(0), zone)

    return local(start, is_end=False).astimezone(UTC), local(end, is_end=True).astimezone(UTC)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _LineFormat:
    """Pre-quoted pieces of one delimiter, so a row is one f-string (``csv.writer`` rules).

    A field is quoted when it holds the delimiter, a double quote, CR or LF; quotes inside are
    doubled: exactly ``csv.writer(delimiter=d, quoting=QUOTE_MINIMAL)`` with CRLF line ends.
    """

    def __init__(
        self, dataset: AcousticDataset, delimiter: str, custom: list[tuple[str, ...]]
    ) -> None:
        d = self.delimiter = delimiter
        q = self.quote
        self.recipients = [d.join(q(x) for x in rec) for rec in dataset._recipients]
        self.custom = ["".join(d + q(v) for v in values) for values in custom]
        self.templates = [
            [
                (
                    q(row[_CODE]) + d + q(row[_MSG]),
                    d.join(q(row[k]) for k in range(_MNAME, _SENDTYPE + 1)),
                    q(row[_GROUP]) + d + q(row[_PROGRAM]),
                    q(row[_ORIGIN]),
                )
                for row in per_mailing
            ]
            for per_mailing in dataset._templates
        ]
        self.uas = tuple(q(x) for x in _USER_AGENTS)
        self.links = tuple((q(a), q(b)) for a, b in _LINKS)
        self.opt_outs = tuple(q(x) for x in _OPT_OUT_DETAILS)
        self.tracking = tuple(q(x) for x in _TRACKING)

    def quote(self, value: str) -> str:
        if self.delimiter in value or '"' in value or "\n" in value or "\r" in value:
            return '"' + value.replace('"', '""') + '"'
        return value

    def line(self, fields: Sequence[str]) -> str:
        return self.delimiter.join(self.quote(f) for f in fields) + "\r\n"


def _write_lines(
    dest: Path | IO[bytes],
    header_line: str,
    batches: Iterable[tuple[datetime, list[Any]]],
    *,
    bad_at: int,
    bad_line: str,
    track: bool,
) -> WrittenFile:
    """Write the header and every line (UTF-8); ``bad_line`` goes before data row ``bad_at``."""
    result = WrittenFile()
    raw: IO[bytes] = dest.open("wb") if isinstance(dest, Path) else dest
    size = 0
    lines = 0
    offsets: list[int] = []

    def emit(chunk: list[str]) -> None:
        nonlocal size, lines
        if not chunk:
            return
        if track:
            position = size
            for text in chunk:
                offsets.append(position)
                position += len(text.encode("utf-8"))
        data = "".join(chunk).encode("utf-8")
        raw.write(data)
        size += len(data)
        lines += data.count(b"\n")

    try:
        emit([header_line])
        written = 0
        for _, items in batches:
            if 0 <= bad_at - written < len(items):
                k = bad_at - written
                emit(items[:k])
                result.malformed_line = lines + 1
                emit([bad_line])
                emit(items[k:])
                bad_at = -1
            else:
                emit(items)
            written += len(items)
        if bad_at >= 0:  # no data row at or after the position: the bad row goes last
            result.malformed_line = lines + 1
            emit([bad_line])
        result.rows = written
        result.size = size
        if track:
            result.row_offsets = [*offsets, size]
    finally:
        if isinstance(dest, Path):
            raw.close()
    return result
