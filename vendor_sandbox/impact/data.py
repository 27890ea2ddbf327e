"""Seeded generator of an impact.com account: programs (campaigns), clicks, report rows.

The generator is the sandbox's ground truth: the api writes result files from the same rows
`truth` returns, so a test compares what the tap emitted with what impact "sent". Vocabulary and
shapes: `docs/impact.md`.

* Program `k` (0-based) has id `12001 + k`. Clicks of program `k` on day `d` (0-based from
  `start`) number `clicks_per_day + (k + d) % 2` (exactly `clicks_per_day` for one program on
  the first day, which a benchmark uses). Click `i` is a pure function of `(seed, k, d, i)`
  through an integer hash, so a day of a million clicks streams without being held.
* `Id` is not unique: every 4th click (`i % 4 == 3`) repeats the `Id` of click `i - 1` one
  second apart, and in programs after the first every 5th click (`i % 5 == 2`) has the `Id`
  of program 0's click `i` that day. (`Id`, `ProgramId`, `EventDate`) is unique.
* Click times fall in the day in the account zone (`timezone`), spread over it in index order;
  values are strings as impact's examples show (`CpcBid` "0.0", `UniqueClick` "true"), with the
  vendor's null-like strings "n/a", "null", "NA" and "" mixed in.
* Report rows: `rows_per_day` per program per day for every configured `ImpactReportSpec`, each
  column's value a function of its name and `(seed, report, k, d, j)`.
* `end` is exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "ACCOUNT_TYPES",
    "ACTION_COLUMNS",
    "CLICK_COLUMNS",
    "CSV_CLICK_COLUMNS",
    "PERFORMANCE_COLUMNS",
    "ImpactDataSpec",
    "ImpactDataset",
    "ImpactReportSpec",
]

ACCOUNT_TYPES = ("Mediapartners", "Advertisers", "Agencies")
_VARIANTS = 4096  # precomputed value combinations clicks pick from
_MASK = (1 << 64) - 1
DAY = 86_400

#: Click fields of a JSON ClickExport row, in order (partner v16 with Program* for Campaign*).
CLICK_COLUMNS = (
    "Id", "ProgramId", "ProgramName", "ProfileId", "IpAddress", "EventDate", "MediaId",
    "MediaName", "AdId", "AdName", "AdType", "ProductSku", "BrandRelated", "DealName",
    "DealType", "DealScope", "CustomerArea", "CustomerCity", "CustomerRegion", "CustomerCountry",
    "DeviceType", "DeviceFamily", "Browser", "Os", "ReferringUrl", "ReferringDomain",
    "LandingPageUrl", "TrafficCategory", "TrafficSource", "BidKeyword", "SearchText", "SharedId",
    "PartnerRelated", "CpcBid", "Payout", "UniqueClick",
)  # fmt: skip
BRAND_RELATED = ("AdCampaign", "AdGroup", "Keyword", "MatchType", "Channel")
PARTNER_RELATED = ("SubId1", "SubId2", "SubId3")
#: A CSV ClickExport's header: the nested objects flattened into their own columns [I].
CSV_CLICK_COLUMNS = tuple(
    c
    for name in CLICK_COLUMNS
    for c in (
        BRAND_RELATED
        if name == "BrandRelated"
        else PARTNER_RELATED
        if name == "PartnerRelated"
        else (name,)
    )
)
ACTION_COLUMNS = (
    "Action_Id", "Campaign_Id", "Campaign", "Event_Date", "Action_Date", "Status", "Sale_Amount",
    "Earnings", "Currency", "SubId1", "Customer_Status",
)  # fmt: skip
PERFORMANCE_COLUMNS = ("Date", "Campaign_Id", "Campaign", "Clicks", "Actions", "Revenue", "CPC")

_AD_TYPES = ("BANNER", "TEXT_LINK", "COUPON", "CONTENT", "ONLINE_TRACKING_LINK", "EMAIL")
_DEVICES = ("DESKTOP", "PHONE", "TABLET", "UNKNOWN")
_FAMILIES = ("iPhone", "Samsung Galaxy", "Windows PC", "Macintosh", "null")
_BROWSERS = ("Chrome", "Safari", "Firefox", "Edge")
_OSES = ("iOS", "Android", "Windows", "Mac OS X")
_CITIES = (("Austin", "TX"), ("Denver", "CO"), ("Boston", "MA"), ("Seattle", "WA"))
_DEALS = (("", "", ""), ("Spring Sale", "GENERAL_SALE", "ENTIRE_STORE"),
          ("Free Ship", "FREE_SHIPPING", "PRODUCT"))  # fmt: skip
_STATUSES = ("APPROVED", "PENDING", "REVERSED")
_PROGRAM_NAMES = ("Acme Outdoor", "Blue Fern Home", "Copper Kettle", "Dune Apparel",
                  "Echo Audio", "Fable Books")  # fmt: skip


def _mix(x: int) -> int:
    """splitmix64: a well-spread 64-bit hash of `x`."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _hash(*parts: int) -> int:
    h = 0
    for part in parts:
        h = _mix(h ^ (part & _MASK))
    return h


@dataclass(frozen=True)
class ImpactReportSpec:
    """One configured ReportExport report: its stream name, handle, columns, key and volume."""

    name: str = "actions"
    report_id: str = "mp_action_listing_fast"
    columns: tuple[str, ...] = ACTION_COLUMNS
    key_fields: tuple[str, ...] = ("Action_Id",)
    rows_per_day: int = 3  # per program per day
    parameters: tuple[tuple[str, str], ...] = ()  # extra query parameters the tap sends as given


DEFAULT_REPORTS = (
    ImpactReportSpec(),
    ImpactReportSpec(
        name="performance_by_day",
        report_id="mp_performance_by_day",
        columns=PERFORMANCE_COLUMNS,
        key_fields=("Date", "Campaign_Id"),
        rows_per_day=1,
        parameters=(("SHOW_CPC", "1"),),
    ),
)


@dataclass(frozen=True)
class ImpactDataSpec:
    """The account: its type and zone, programs, days `[start, end)`, clicks and reports.

    The default is small enough that one sync fits a day's ClickExport quota: 2 programs x 4
    days = 8 jobs of the 10 allowed.
    """

    seed: int = 11
    account_type: str = "Mediapartners"
    timezone: str = "America/New_York"
    programs: int = 2
    start: date = date(2024, 1, 1)
    end: date = date(2024, 1, 5)
    clicks_per_day: int = 5
    reports: tuple[ImpactReportSpec, ...] = DEFAULT_REPORTS
    advertiser_names: tuple[str, ...] = field(default=_PROGRAM_NAMES)

    def __post_init__(self) -> None:
        if self.account_type not in ACCOUNT_TYPES:
            raise ValueError(f"account_type must be one of {ACCOUNT_TYPES}")
        if self.end <= self.start:
            raise ValueError("end must be after start (end is exclusive)")
        if self.programs < 1:
            raise ValueError("at least one program")


class ImpactDataset:
    """The rows of an `ImpactDataSpec`, built on demand (index-based, nothing held)."""

    def __init__(self, spec: ImpactDataSpec) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self.days = [spec.start + timedelta(days=n) for n in range((spec.end - spec.start).days)]
        self._reports = {r.report_id: r for r in spec.reports}
        self._day_shapes: dict[date, tuple[str, bool]] = {}
        self._bases: dict[tuple[int, int, int], int] = {}
        self._names: dict[int, str] = {}
        self._variants_a = [self._variant_a(j) for j in range(_VARIANTS)]
        self._variants_b = [self._variant_b(j) for j in range(_VARIANTS)]

    # -- programs ------------------------------------------------------------------------------
    def program_ids(self) -> list[str]:
        return [str(12001 + k) for k in range(self.spec.programs)]

    def program_index(self, program_id: str) -> int | None:
        ids = self.program_ids()
        return ids.index(program_id) if program_id in ids else None

    def program_name(self, k: int) -> str:
        name = self._names.get(k)
        if name is None:
            name = self._names[k] = self._program_name(k)
        return name

    def _program_name(self, k: int) -> str:
        names = self.spec.advertiser_names
        return f"{names[k % len(names)]} Program" + (
            f" {k // len(names) + 1}" if k >= len(names) else ""
        )

    def campaigns(self, account_type: str | None = None) -> list[dict[str, Any]]:
        """Campaign records in the list endpoint's shape for the account type."""
        kind = account_type or self.spec.account_type
        out = []
        for k, pid in enumerate(self.program_ids()):
            name = self.program_name(k)
            slug = name.lower().replace(" ", "-")
            common: dict[str, Any] = {
                "AdvertiserId": str(500 + k),
                "AdvertiserName": name.removesuffix(" Program"),
                "AdvertiserUrl": f"https://{slug}.example.com",
                "CampaignName": name,
                "CampaignUrl": f"https://{slug}.example.com/shop",
                "CampaignDescription": "" if k % 2 else f"The {name}.",
                "ShippingRegions": ["US", "CA"] if k % 2 == 0 else [],
                "CampaignLogoUri": f"/{kind}/logos/{pid}.png",
                "PublicTermsUri": f"/{kind}/terms/{pid}",
            }
            if kind == "Mediapartners":
                record = {
                    "AdvertiserId": common.pop("AdvertiserId"),
                    "AdvertiserName": common.pop("AdvertiserName"),
                    "AdvertiserUrl": common.pop("AdvertiserUrl"),
                    "CampaignId": pid,
                    **common,
                    "ContractStatus": "Active",
                    "ContractUri": f"/Mediapartners/contracts/{pid}",
                    "TrackingLink": f"https://{slug}.sjv.io/c/1/{pid}/1",
                    "AllowsDeeplinking": "true" if k % 2 == 0 else "false",
                    "DeeplinkDomains": [f"{slug}.example.com"] if k % 2 == 0 else [],
                    "Uri": f"/Mediapartners/campaigns/{pid}",
                }
            else:
                record = {
                    "Id": pid,
                    **common,
                    "DealsUri": f"/{kind}/campaigns/{pid}/Deals",
                    "Uri": f"/{kind}/campaigns/{pid}",
                }
            out.append(record)
        return out

    # -- clicks --------------------------------------------------------------------------------
    def day_index(self, day: date) -> int | None:
        n = (day - self.spec.start).days
        return n if 0 <= n < len(self.days) else None

    def click_count(self, k: int, d: int) -> int:
        return self.spec.clicks_per_day + (k + d) % 2

    def _day_shape(self, day: date) -> tuple[str, bool]:
        """(UTC offset text of the day's start, whether it holds all day) in the account zone."""
        shape = self._day_shapes.get(day)
        if shape is None:
            start = datetime.combine(day, time(0), self.zone)
            end = datetime.combine(day, time(23, 59, 59), self.zone)
            offset = start.isoformat()[19:]
            shape = (offset, start.utcoffset() == end.utcoffset())
            self._day_shapes[day] = shape
        return shape

    def _event_date(self, day: date, second: int) -> str:
        offset, steady = self._day_shape(day)
        if steady:
            hh, rest = divmod(second, 3600)
            mm, ss = divmod(rest, 60)
            return f"{day.isoformat()}T{hh:02d}:{mm:02d}:{ss:02d}{offset}"
        moment = datetime.combine(day, time(0), self.zone) + timedelta(seconds=second)
        return moment.isoformat()

    def _second(self, i: int, n: int) -> int:
        base = (i * (DAY - 1)) // max(n, 1)
        if i % 4 == 3:  # a repeat of click i-1's Id: one second away from it
            before = ((i - 1) * (DAY - 1)) // max(n, 1)
            return before + 1 if before < DAY - 1 else before - 1
        return base

    def _base(self, salt: int, k: int, d: int) -> int:
        """The hash every click of program `k` on day `d` derives its own from (one mix each)."""
        key = (salt, k, d)
        base = self._bases.get(key)
        if base is None:
            base = self._bases[key] = _hash(self.spec.seed, salt, k, d)
        return base

    def _click_id(self, k: int, d: int, i: int) -> str:
        if i % 4 == 3:
            i -= 1
        h = _mix(self._base(1, k, d) ^ i)
        return f"{h:016x}{(h >> 7) & 0xFFFF:04x}"[:20]

    def _id_of(self, k: int, d: int, i: int) -> str:
        if k > 0 and i % 5 == 2 and i < self.click_count(0, d):
            return self._click_id(0, d, i)
        return self._click_id(k, d, i)

    def click_values(self, k: int, d: int, i: int, n: int) -> list[Any]:
        """Click `i` of `n` (program `k`, day `d`) as flat CSV values (`CSV_CLICK_COLUMNS`).

        Most fields come from two tables of precomputed variants picked by the click's hash, so
        a million-click day is written in seconds; the id, time, IP and landing URL are its own.
        """
        h = _mix(self._base(2, k, d) ^ i)
        pid = str(12001 + k)
        return [
            self._id_of(k, d, i),
            pid,
            self.program_name(k),
            "" if h % 3 == 0 else str(7000000 + (h >> 3) % 900000),
            f"{h >> 16:012x}",  # hashed IP, as impact serves it
            self._event_date(self.days[d], self._second(i, n)),
            *self._variants_a[(h >> 20) % _VARIANTS],
            f"https://{pid}.example.com/landing?i={i}",
            *self._variants_b[(h >> 36) % _VARIANTS],
        ]

    def _variant_a(self, j: int) -> tuple[str, ...]:
        """MediaId .. ReferringDomain of variant `j`."""
        h = _hash(self.spec.seed, 4, j)
        g = _mix(h)
        city, region = _CITIES[h % 4]
        unknown_place = (h >> 4) % 9 == 0
        deal = _DEALS[(h >> 8) % 3]
        media = 200001 + (h >> 12) % 40
        ad = 300001 + (h >> 18) % 25
        referrer = (h >> 28) % 6
        return (
            str(media),
            f"Partner Media {media - 200000}",
            str(ad),
            f"Ad {ad - 300000}",
            _AD_TYPES[(h >> 32) % len(_AD_TYPES)],
            "" if (g >> 5) % 4 else f"SKU-{(g >> 9) % 1000:04d}",
            # BrandRelated
            "n/a" if (g >> 11) % 5 == 0 else f"Search {(g >> 50) % 4}",
            "" if (g >> 13) % 3 == 0 else f"Group {(g >> 14) % 9}",
            "" if (g >> 17) % 3 else f"keyword {(g >> 19) % 50}",
            "" if (g >> 17) % 3 else ("EXACT" if (g >> 21) % 2 else "BROAD"),
            ("Search", "Social", "Display")[(g >> 22) % 3],
            deal[0],
            deal[1],
            deal[2],
            "n/a" if unknown_place else str(200 + (h >> 36) % 700),
            "" if unknown_place else city,
            "" if unknown_place else region,
            "n/a" if unknown_place else "US",
            _DEVICES[(h >> 40) % len(_DEVICES)],
            _FAMILIES[(h >> 43) % len(_FAMILIES)],
            _BROWSERS[(h >> 46) % len(_BROWSERS)],
            _OSES[(h >> 48) % len(_OSES)],
            "" if referrer == 0 else f"https://blog{referrer}.example.org/post/{j}",
            "NA" if referrer == 0 else f"blog{referrer}.example.org",
        )

    def _variant_b(self, j: int) -> tuple[str, ...]:
        """TrafficCategory .. UniqueClick of variant `j`."""
        g = _hash(self.spec.seed, 5, j)
        return (
            ("Content", "Coupon", "Loyalty")[(g >> 25) % 3],
            ("Website", "Email", "Mobile App")[(g >> 27) % 3],
            "" if (g >> 29) % 4 else "spring shoes",
            "",
            "" if (g >> 31) % 2 else f"shared-{(g >> 33) % 100}",
            # PartnerRelated
            f"sub{(g >> 35) % 10}",
            "" if (g >> 38) % 2 else "newsletter",
            "null" if (g >> 39) % 7 == 0 else "",
            "0.0" if (g >> 41) % 4 else "0.15",
            "0.00" if (g >> 44) % 3 else "0.25",
            "true" if (g >> 24) % 5 else "false",
        )

    def click_record(self, values: list[Any], account_type: str | None = None) -> dict[str, Any]:
        """The JSON ClickExport row of flat `values`: nested objects per account type."""
        kind = account_type or self.spec.account_type
        row = dict(zip(CSV_CLICK_COLUMNS, values, strict=True))
        brand = {c: row.pop(c) for c in BRAND_RELATED}
        partner = {c: row.pop(c) for c in PARTNER_RELATED}
        record: dict[str, Any] = {}
        for name in CLICK_COLUMNS:
            if name == "BrandRelated":
                record[name] = brand if kind == "Advertisers" else [brand]
            elif name == "PartnerRelated":
                record[name] = partner if kind == "Advertisers" else [partner]
            elif name == "Payout" and kind == "Advertisers":
                record[name] = float(row[name])  # brand v14 types Payout as a number
            else:
                record[name] = row[name]
        return record

    def click_units(
        self, program_ids: Iterable[str] | None, day: date
    ) -> list[tuple[int, int, int]]:
        """(program index, day index, count) of the programs asked for on `day`."""
        d = self.day_index(day)
        if d is None:
            return []
        wanted = None if program_ids is None else set(program_ids)
        out = []
        for k, pid in enumerate(self.program_ids()):
            if wanted is None or pid in wanted:
                out.append((k, d, self.click_count(k, d)))
        return out

    def click_rows(self, program_ids: Iterable[str] | None, day: date) -> Iterator[list[Any]]:
        """Flat click values of the programs asked for (None: all) on `day`, streamed.

        The same values as `click_values`, with the per-day work hoisted out of the loop (a
        benchmark writes a million clicks).
        """
        offset, steady = self._day_shape(day)
        for k, d, n in self.click_units(program_ids, day):
            if not steady:
                yield from (self.click_values(k, d, i, n) for i in range(n))
                continue
            base, pid, name = self._base(2, k, d), str(12001 + k), self.program_name(k)
            prefix, landing = f"{day.isoformat()}T", f"https://{pid}.example.com/landing?i="
            variants_a, variants_b, id_of, second = (
                self._variants_a,
                self._variants_b,
                self._id_of,
                self._second,
            )
            for i in range(n):
                h = _mix(base ^ i)
                hh, rest = divmod(second(i, n), 3600)
                mm, ss = divmod(rest, 60)
                yield [
                    id_of(k, d, i),
                    pid,
                    name,
                    "" if h % 3 == 0 else str(7000000 + (h >> 3) % 900000),
                    f"{h >> 16:012x}",
                    f"{prefix}{hh:02d}:{mm:02d}:{ss:02d}{offset}",
                    *variants_a[(h >> 20) % _VARIANTS],
                    f"{landing}{i}",
                    *variants_b[(h >> 36) % _VARIANTS],
                ]

    def clicks_on(self, program_ids: Iterable[str] | None, day: date) -> int:
        return sum(n for _, _, n in self.click_units(program_ids, day))

    # -- reports -------------------------------------------------------------------------------
    def report(self, report_id: str) -> ImpactReportSpec | None:
        return self._reports.get(report_id)

    def report_rows(
        self, report: ImpactReportSpec, first: date, last: date, program_id: str | None = None
    ) -> Iterator[dict[str, str]]:
        """Rows of `report` for days `first`..`last` (inclusive), one program or all."""
        r = self.spec.reports.index(report)
        for day in self.days:
            if not first <= day <= last:
                continue
            d = self.days.index(day)
            for k, pid in enumerate(self.program_ids()):
                if program_id is not None and pid != program_id:
                    continue
                for j in range(report.rows_per_day):
                    yield self._report_row(report, r, k, d, j)

    def report_count(
        self, report: ImpactReportSpec, first: date, last: date, program_id: str | None = None
    ) -> int:
        days = sum(1 for day in self.days if first <= day <= last)
        programs = 1 if program_id is not None else self.spec.programs
        if program_id is not None and program_id not in self.program_ids():
            programs = 0
        return days * programs * report.rows_per_day

    def _report_row(
        self, report: ImpactReportSpec, r: int, k: int, d: int, j: int
    ) -> dict[str, str]:
        day = self.days[d]
        h = _hash(self.spec.seed, 3, r, k, d, j)
        second = (j * 3600 + h % 3600) % DAY
        values = {
            "Action_Id": f"{19000 + r}.{12001 + k}.{day:%Y%m%d}.{j}",
            "Campaign_Id": str(12001 + k),
            "Campaign": self.program_name(k),
            "Event_Date": self._event_date(day, second),
            "Action_Date": self._event_date(day, min(second + 120, DAY - 1)),
            "Status": _STATUSES[h % 3],
            "Sale_Amount": f"{(h >> 8) % 20000 / 100:.2f}",
            "Earnings": f"{(h >> 24) % 2000 / 100:.2f}",
            "Currency": "USD",
            "SubId1": "" if (h >> 30) % 3 else "n/a",
            "Customer_Status": ("New", "Returning", "")[(h >> 33) % 3],
            "Date": day.isoformat(),
            "Clicks": str(self.click_count(k, d)),
            "Actions": str((h >> 36) % 12),
            "Revenue": f"{(h >> 40) % 90000 / 100:.2f}",
            "CPC": "0.0" if (h >> 50) % 2 else "NA",
        }
        return {c: values.get(c, f"{c}-{k}-{d}-{j}") for c in report.columns}

    # -- truth ---------------------------------------------------------------------------------
    def _days(self, start: date | None, end: date | None) -> list[date]:
        return [
            day
            for day in self.days
            if (start is None or day >= start) and (end is None or day < end)
        ]

    def truth(
        self,
        start: date | None = None,
        end: date | None = None,
        program_ids: Iterable[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Raw rows per tap stream for days `[start, end)` (default: every day): `impact_programs`
        (campaign records), `impact_clicks` (JSON ClickExport rows; each carries its
        `ProgramId` and `EventDate`), `impact_report_<name>` (report rows)."""
        wanted = list(program_ids) if program_ids is not None else None
        narrowed: list[str | None] = list(wanted) if wanted is not None else [None]
        out: dict[str, list[dict[str, Any]]] = {"impact_programs": self.campaigns()}
        out["impact_clicks"] = [
            self.click_record(values)
            for day in self._days(start, end)
            for values in self.click_rows(wanted, day)
        ]
        for report in self.spec.reports:
            rows: list[dict[str, Any]] = []
            for day in self._days(start, end):
                for pid in narrowed:
                    rows.extend(self.report_rows(report, day, day, pid))
            out[f"impact_report_{report.name}"] = rows
        return out

    def counts(
        self,
        start: date | None = None,
        end: date | None = None,
        program_ids: Iterable[str] | None = None,
    ) -> dict[str, int]:
        """`len` of each `truth` list, without building a row."""
        wanted = list(program_ids) if program_ids is not None else None
        narrowed: list[str | None] = list(wanted) if wanted is not None else [None]
        days = self._days(start, end)
        out: dict[str, int] = {
            "impact_programs": self.spec.programs,
            "impact_clicks": sum(self.clicks_on(wanted, day) for day in days),
        }
        for report in self.spec.reports:
            out[f"impact_report_{report.name}"] = sum(
                self.report_count(report, day, day, pid) for day in days for pid in narrowed
            )
        return out
