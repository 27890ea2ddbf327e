"""impact.com streams: programs, clicks (one job per program and day), and configured reports.

* `impact_programs`: every program (campaign) the account lists, each run.
* `impact_clicks`: per program, the last day fully emitted (`last_day`); each run exports the
  days after it that are over, as far as the day's ClickExport quota allows, oldest day first
  across programs, and a program stops at its first day left for a later run.
* `impact_report_<name>`: one stream per configured report, date windows of `window_days` from
  `next_window_start` less `lookback_days`, committed window by window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from tap_emailtracking.errors import UnitPutOffError
from tap_emailtracking.jobs import Unit
from tap_emailtracking.streams import ExportStream, load_schema
from tap_emailtracking.vendors.impact import schemas
from tap_emailtracking.vendors.impact.export import CLICKS, REPORTS, Export, ImpactExports
from tap_emailtracking.vendors.impact.rows import ClickMapper, report_record
from tap_emailtracking.vendors.impact.settings import ReportSettings
from tap_emailtracking.windows import plan_windows

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.vendors.spec import SourceSlot

PROGRAM_FIELDS = {
    "campaignid": "program_id",
    "id": "program_id",
    "campaignname": "program_name",
    "advertiserid": "advertiser_id",
    "advertisername": "advertiser_name",
    "advertiserurl": "advertiser_url",
    "campaignurl": "program_url",
    "campaigndescription": "description",
    "contractstatus": "contract_status",
    "trackinglink": "tracking_link",
    "allowsdeeplinking": "allows_deeplinking",
    "shippingregions": "shipping_regions",
    "deeplinkdomains": "deeplink_domains",
    "uri": "uri",
}


def program_record(raw: dict[str, Any]) -> dict[str, Any]:
    """A program as emitted: known fields named, `allows_deeplinking` a boolean, others kept."""
    record: dict[str, Any] = dict.fromkeys(dict.fromkeys(PROGRAM_FIELDS.values()))
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        column = PROGRAM_FIELDS.get(key.lower())
        if column is None:
            extra[key] = value
        elif value not in ("", None) or record[column] is None:
            record[column] = None if value == "" else value
    if record["allows_deeplinking"] is not None:
        record["allows_deeplinking"] = str(record["allows_deeplinking"]).lower() == "true"
    record["program_id"] = str(record["program_id"]) if record["program_id"] else None
    record["extra"] = extra or None
    return record


class ImpactStream(ExportStream):
    """An impact.com stream; `kind` names its schema file."""

    kind: ClassVar[str]

    def __init__(
        self, tap: Tap, source: SourceSlot[ImpactExports], schema: dict[str, Any] | None = None
    ) -> None:
        super().__init__(tap, schema or load_schema(schemas, self.kind))
        self.source = source
        source.join(self)


class ProgramsStream(ImpactStream):
    """Every program (campaign) of the account."""

    name = "impact_programs"
    kind = "programs"
    primary_keys = ("program_id",)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for raw in self.source.get().programs(stream=self.name):
            record = program_record(raw)
            if record["program_id"]:
                yield record


class JobStream(ImpactStream):
    """A stream of export jobs: it plans its units once and commits each in turn."""

    _plan: list[Unit] | None = None

    def plan(self, exports: ImpactExports) -> list[Unit]:
        if self._plan is None:
            self._plan = self.plan_units(exports)
        return self._plan

    def plan_units(self, exports: ImpactExports) -> list[Unit]:
        raise NotImplementedError


class ClicksStream(JobStream):
    """Clicks, one ClickExport job per program and day (days that are over)."""

    name = "impact_clicks"
    kind = "clicks"
    primary_keys = ("id", "program_id", "event_date")

    @override
    def plan_units(self, exports: ImpactExports) -> list[Unit]:
        s = exports.settings
        listed = [
            str(p.get("CampaignId") or p.get("Id") or "")
            for p in exports.programs(stream=self.name)
        ]
        programs = list(s.program_ids) if s.program_ids is not None else [p for p in listed if p]
        done = {} if self.full_table else dict(self.stream_state.get("last_day") or {})
        first = {
            p: date.fromisoformat(done[p]) + timedelta(days=1) if p in done else exports.start_date
            for p in programs
        }
        last = exports.last_day()
        units: list[tuple[Unit, bool]] = []
        day = min(first.values(), default=last + timedelta(days=1))
        while day <= last:
            for program in programs:
                if day >= first[program]:
                    units.append(self._unit(exports, program, day))
            day += timedelta(days=1)
        return exports.within_quota(CLICKS, units)

    def _unit(self, exports: ImpactExports, program: str, day: date) -> tuple[Unit, bool]:
        s = exports.settings
        key = f"click:{program}:{day.isoformat()}"
        params: dict[str, Any] = {"Date": day.isoformat(), "ResultFormat": s.result_format}
        if s.account_type == "Advertisers":
            path = f"Programs/{program}/ClickExport"
        else:
            path, params["ProgramId"] = "ClickExport", program
        unit = exports.unit(
            key,
            Export(CLICKS, path, params, self.name),
            f"clicks of program {program} on {day.isoformat()}",
            {"program_id": program, "day": day.isoformat()},
        )
        return unit, exports.ledger.get(key) is not None

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        exports = self.source.get()
        exports.pipeline()
        mapper = ClickMapper()
        stopped: set[str] = set()
        done = {} if self.full_table else dict(self.stream_state.get("last_day") or {})
        for unit in self.plan(exports):
            program, day = str(unit.info["program_id"]), str(unit.info["day"])
            expected = (
                (date.fromisoformat(done[program]) + timedelta(days=1)).isoformat()
                if program in done
                else None
            )
            if program in stopped or (expected is not None and day != expected):
                stopped.add(program)  # a day was left behind: later days wait for it
                continue
            try:
                yield from exports.records(unit, mapper.record, key="Clicks", stream=self.name)
            except UnitPutOffError:
                stopped.add(program)
                continue
            done[program] = day
            self.commit(
                "last_day",
                dict(done),
                then=partial(exports.ledger.drop, unit.key, checkpoint=False),
            )
        if stopped:
            self.logger.warning(
                "impact.com: %s: %d program(s) have days left for the next runs (the day's "
                "ClickExport quota is used up)",
                self.name,
                len(stopped),
            )


class ReportStream(JobStream):
    """One configured report, one ReportExport job per date window."""

    kind = "report"
    report: ClassVar[ReportSettings]

    def __init__(self, tap: Tap, source: SourceSlot[ImpactExports]) -> None:
        super().__init__(tap, source, report_schema(self.report))

    @override
    def plan_units(self, exports: ImpactExports) -> list[Unit]:
        s = exports.settings
        bookmark = None if self.full_table else self.stream_state.get("next_window_start")
        first = exports.start_date
        if bookmark:
            first = max(first, date.fromisoformat(str(bookmark)) - timedelta(days=s.lookback_days))
        units = []
        for window in plan_windows(first, exports.last_day(), s.window_days):
            key = f"report:{self.report.name}:{window.key()}"
            units.append(
                (
                    self._unit(exports, key, window.start, window.end),
                    exports.ledger.get(key) is not None,
                )
            )
        return exports.within_quota(REPORTS, units)

    def _unit(self, exports: ImpactExports, key: str, start: date, end: date) -> Unit:
        s = exports.settings
        if s.account_type == "Advertisers":
            dates = {"StartDate": f"{start}T00:00:00Z", "EndDate": f"{end}T23:59:59Z"}
        else:
            dates = {"START_DATE": start.isoformat(), "END_DATE": end.isoformat()}
        params = {**self.report.parameters, **dates, "ResultFormat": s.result_format}
        return exports.unit(
            key,
            Export(REPORTS, f"ReportExport/{self.report.report_id}", params, self.name),
            f"report {self.report.name} {start} to {end}",
            {"window_start": start.isoformat(), "window_end": end.isoformat()},
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        exports = self.source.get()
        exports.pipeline()
        for unit in self.plan(exports):
            window = (str(unit.info["window_start"]), str(unit.info["window_end"]))
            read: Callable[[dict[str, Any]], dict[str, Any]] = partial(
                report_record, key_fields=self.report.key_fields, window=window
            )
            try:
                yield from exports.records(unit, read, key="Records", stream=self.name)
            except UnitPutOffError:
                return  # the day's quota is spent: the rest waits for the next run
            following = date.fromisoformat(window[1]) + timedelta(days=1)
            self.commit(
                "next_window_start",
                following.isoformat(),
                then=partial(exports.ledger.drop, unit.key, checkpoint=False),
            )


def report_schema(report: ReportSettings) -> dict[str, Any]:
    """Key fields as columns, every column of the row in `fields` (as sent), and the window."""
    properties: dict[str, Any] = {name: {"type": "string"} for name in report.key_fields}
    properties["fields"] = {
        "type": "object",
        "additionalProperties": True,
        "description": f"Every column of report {report.report_id}'s row, as impact.com sent it",
    }
    properties["window_start"] = {"type": "string", "format": "date"}
    properties["window_end"] = {"type": "string", "format": "date"}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def report_stream(report: ReportSettings) -> type[ReportStream]:
    """The stream class of one configured report."""
    return type(
        f"ImpactReport{report.name.title().replace('_', '')}Stream",
        (ReportStream,),
        {
            "name": report.stream,
            "report": report,
            "primary_keys": report.key_fields,
            "__doc__": f"impact.com report {report.report_id}.",
        },
    )
