"""impact.com's units of work: one ClickExport job per program and day, one ReportExport job per
report and date window, planned within the daily quotas and run through the shared pipeline.

When the sync starts the programs are listed (paged, `@nextpageuri`), the vendor's day is read
from its `Date` header in the account's time zone, and every unit the selected streams need is
planned: jobs already in state are resumed (they cost no quota), and new ones are planned only
as far as the day's quota (`click_exports_per_day`, `report_exports_per_day`, counted in state
under `_impact_quota` for the vendor's day) allows; the days left stay behind the streams'
bookmarks for the next runs, and the log says how many and when the quota resets. A quota that
impact reports spent anyway (429) leaves the rest for a later run (`UnitPutOffError`).

Clicks are exported only for days that are over. A done job's `ResultUri` is downloaded (a 302
to a signed URL is followed without the credentials), each page of a paged JSON result in turn
(`@nextpageuri`), and read as a stream (JSON or CSV by header name). A result that is gone is
replayed through `Jobs/{id}/Replay` (counted against the quota), else submitted again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from tap_emailtracking.errors import CorruptFileError, UnusableResultError
from tap_emailtracking.formats.containers import open_container, unexpected_errors
from tap_emailtracking.formats.records import json_or_csv_rows
from tap_emailtracking.jobs import (
    JobLedger,
    JobPipeline,
    JobRunner,
    JobScheduler,
    JobStatus,
    Submission,
    Unit,
)
from tap_emailtracking.limits import Limits
from tap_emailtracking.timestamps import zone
from tap_emailtracking.transports.http import VendorHttp
from tap_emailtracking.transports.http_files import HttpFileSite, http_site_settings
from tap_emailtracking.vendors.impact.client import VENDOR, ImpactClient, QuotaSpentError
from tap_emailtracking.vendors.impact.rows import BadValueError
from tap_emailtracking.vendors.impact.settings import ImpactSettings
from tap_emailtracking.workdirs import make_workdir

LOGGER = logging.getLogger("tap_emailtracking.impact")
LEDGER_NAME = "_impact_jobs"
QUOTA_NAME = "_impact_quota"
CLICKS, REPORTS = "ClickExport", "ReportExport"
PROGRESS_EVERY = 250_000
UTC = timezone.utc


class DailyQuota:
    """Scheduling requests used on the vendor's day, per kind, kept in tap state.

    The day is the vendor's (its `Date` header) in the account's time zone, so a quota that
    resets at the account's midnight is counted the way impact counts it.
    """

    def __init__(self, state: dict[str, Any], limits: Mapping[str, int], day: date) -> None:
        bookmarks = state.setdefault("bookmarks", {})
        entry = bookmarks.setdefault(QUOTA_NAME, {})
        if entry.get("day") != day.isoformat():
            entry.clear()
            entry["day"] = day.isoformat()
        self._entry = entry
        self.limits = dict(limits)
        self.day = day

    def used(self, kind: str) -> int:
        return int(self._entry.get(kind, 0))

    def left(self, kind: str) -> int:
        return max(0, self.limits[kind] - self.used(kind))

    def take(self, kind: str, *, stream: str | None, what: str) -> None:
        """Count one request, or raise `QuotaSpentError` when none is left today."""
        if self.left(kind) <= 0:
            raise QuotaSpentError(
                f"{what}: the {kind} quota of {self.limits[kind]} a day is used up for "
                f"{self.day.isoformat()}",
                vendor=VENDOR,
                stream=stream,
                action="nothing to do: the next run continues from where this one stopped",
            )
        self._entry[kind] = self.used(kind) + 1

    def spent(self, kind: str) -> None:
        """impact says the quota is spent (other users of the account count too)."""
        self._entry[kind] = max(self.used(kind), self.limits[kind])


@dataclass(frozen=True)
class Export:
    """One unit's scheduling request: its kind, path, parameters and stream."""

    kind: str
    path: str
    params: Mapping[str, Any]
    stream: str


class ImpactJob:
    """One unit's export job, as the shared lifecycle sees it (replayable)."""

    def __init__(self, exports: ImpactExports, request: Export, label: str) -> None:
        self.exports = exports
        self.request = request
        self.label = label

    def submit(self) -> Submission:
        return self.exports.schedule(self.request, self.label)

    def check(self, job_id: str) -> JobStatus:
        return self.exports.client.job(job_id, stream=self.request.stream)

    def replay(self, job_id: str) -> Submission | None:
        quota = self.exports.quota()
        quota.take(self.request.kind, stream=self.request.stream, what=f"replay of job {job_id}")
        return self.exports.client.replay(job_id, stream=self.request.stream)


class PlannedStream(Protocol):
    """What the plan asks each impact export stream."""

    @property
    def name(self) -> str: ...

    @property
    def selected(self) -> bool: ...

    def plan(self, exports: ImpactExports) -> list[Unit]: ...


class ImpactExports:
    """Programs, quotas, planning and results of one sync."""

    def __init__(
        self,
        settings: ImpactSettings,
        *,
        state: dict[str, Any],
        checkpoint: Callable[[], None],
        start_date: date,
        end_date: date | None,
        streams: Sequence[PlannedStream] = (),
        temp_dir: str | None = None,
        limits: Limits | None = None,
        jobs: JobScheduler | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.state = state
        self.start_date = start_date
        self.end_date = end_date
        self.limits = limits or Limits()
        self.tz = zone(settings.timezone)
        self._now = now
        self._sleep = sleep
        self._streams = streams
        self.http = VendorHttp(vendor=VENDOR, policy=settings.http_policy(), sleep=sleep)
        self.client = ImpactClient(settings, self.http)
        self.ledger = JobLedger(state, LEDGER_NAME, checkpoint)
        self.runner = JobRunner(
            vendor=VENDOR, ledger=self.ledger, policy=settings.poll_policy(), scheduler=jobs
        )
        self.workdir = make_workdir(self, "impact", temp_dir)
        self._programs: list[dict[str, Any]] | None = None
        self._quota: DailyQuota | None = None
        self._pipeline: JobPipeline | None = None
        self.left_behind: dict[str, int] = {}

    # -- the vendor's day and quotas ----------------------------------------------------------

    def programs(self, *, stream: str | None) -> list[dict[str, Any]]:
        """Every program (campaign) of the account, read once per sync."""
        if self._programs is None:
            self._programs = list(
                self.client.pages("Campaigns", "Campaigns", what="Campaigns", stream=stream)
            )
            LOGGER.info("impact.com: %d program(s)", len(self._programs))
        return self._programs

    def today(self) -> date:
        """The vendor's calendar day in the account's time zone (its clock, else ours)."""
        return (self.client.vendor_now or self._now()).astimezone(self.tz).date()

    def last_day(self) -> date:
        """The last day that is over (impact asks for a day only once it is), within end_date."""
        yesterday = self.today() - timedelta(days=1)
        return yesterday if self.end_date is None else min(self.end_date, yesterday)

    def quota(self) -> DailyQuota:
        """The day's quota counts, reset when the vendor's day has changed."""
        today = self.today()
        if self._quota is None or self._quota.day != today:
            self._quota = DailyQuota(
                self.state,
                {
                    CLICKS: self.settings.click_exports_per_day,
                    REPORTS: self.settings.report_exports_per_day,
                },
                today,
            )
        return self._quota

    def within_quota(self, kind: str, units: list[tuple[Unit, bool]]) -> list[Unit]:
        """Units in order: those with a job in state, and new ones while the quota lasts."""
        left = self.quota().left(kind)
        kept = []
        for unit, resumed in units:
            if resumed or left > 0:
                kept.append(unit)
                left -= 0 if resumed else 1
            else:
                self.left_behind[unit.stream or kind] = (
                    self.left_behind.get(unit.stream or kind, 0) + 1
                )
        return kept

    def schedule(self, request: Export, label: str) -> Submission:
        """Schedule one export, counting it against the day's quota first."""
        quota = self.quota()
        what = f"{request.kind} of {label}"
        quota.take(request.kind, stream=request.stream, what=what)
        try:
            return self.client.schedule(
                request.path, request.params, what=what, stream=request.stream
            )
        except QuotaSpentError:
            quota.spent(request.kind)
            raise

    # -- planning -----------------------------------------------------------------------------

    def unit(self, key: str, request: Export, label: str, info: Mapping[str, Any]) -> Unit:
        return Unit(key, ImpactJob(self, request, label), label, request.stream, dict(info))

    def start_jobs(self) -> None:
        """The sync starts: plan every stream's units and submit (or resume) the first jobs."""
        self.pipeline().start()

    def pipeline(self) -> JobPipeline:
        """Every selected stream's units (streams in the SDK's order, by name)."""
        if self._pipeline is None:
            units: list[Unit] = []
            for stream in sorted(self._streams, key=lambda s: s.name):
                if stream.selected:
                    units += stream.plan(self)
            self._pipeline = self.runner.whole_plan(
                units, max_in_flight=self.settings.max_jobs_in_flight
            )
            quota = self.quota()
            LOGGER.info(
                "impact.com: %d export job(s) to run, up to %d at a time; quotas used on %s "
                "(%s): ClickExport %d of %d, ReportExport %d of %d",
                len(units),
                self.settings.max_jobs_in_flight,
                quota.day,
                self.settings.timezone,
                quota.used(CLICKS),
                quota.limits[CLICKS],
                quota.used(REPORTS),
                quota.limits[REPORTS],
            )
            for name, count in sorted(self.left_behind.items()):
                LOGGER.warning(
                    "impact.com: %s: %d unit(s) left for the next runs: the day's quota is used "
                    "up; it resets at midnight %s (the vendor's day is %s)",
                    name,
                    count,
                    self.settings.timezone,
                    quota.day,
                )
        return self._pipeline

    # -- results ------------------------------------------------------------------------------

    def records(
        self,
        unit: Unit,
        read: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        key: str,
        stream: str,
    ) -> Iterator[dict[str, Any]]:
        """The rows of a unit's result, every page of it, each mapped by `read`; `key` names the
        member of a JSON page that holds them (`Clicks`, `Records`)."""
        pipeline = self.pipeline()
        local = self.workdir / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{unit.key}.result")

        def download(_: Unit, status: JobStatus) -> str:
            self._download(str(status.result or ""), local, stream)
            return str(status.result or "")

        try:
            uri: str | None = pipeline.fetch(unit.key, download)
            job_id = str((self.ledger.get(unit.key) or {}).get("job_id", "?"))
            page = 1
            while uri:
                subject = f"job {job_id}, {unit.label}, result page {page}"
                try:
                    meta: dict[str, Any] = {}
                    yield from self._read(local, read, meta, key, subject=subject, stream=stream)
                except UnusableResultError:
                    pipeline.result_unusable(unit.key)
                    raise
                uri = str(meta.get("@nextpageuri") or "").strip() or None
                if uri is not None:
                    page += 1
                    self._download(uri, local, stream)
        finally:
            local.unlink(missing_ok=True)

    def _download(self, uri: str, local: Path, stream: str) -> None:
        s = self.settings
        settings = http_site_settings(
            s.base_url,
            username=s.account_sid,
            password=s.auth_token,
            timeout_seconds=s.request_timeout_seconds,
            max_attempts=s.max_attempts,
            config_key="impact",
        )
        with HttpFileSite(
            settings,
            vendor=VENDOR,
            stream=stream,
            sleep=self._sleep,
            credentials_setting="impact.account_sid and impact.auth_token",
        ) as site:
            site.download(self.client.url(uri), local)

    def _read(
        self,
        path: Path,
        read: Callable[[dict[str, Any]], dict[str, Any]],
        meta: dict[str, Any],
        key: str,
        *,
        subject: str,
        stream: str,
    ) -> Iterator[dict[str, Any]]:
        started, count = time.monotonic(), 0
        with (
            unexpected_errors(vendor=VENDOR, stream=stream, subject=subject),
            open_container(
                path, limits=self.limits, vendor=VENDOR, stream=stream, subject=subject
            ) as container,
            container.open(container.members[0]) as handle,
        ):
            rows = json_or_csv_rows(
                handle,
                limits=self.limits,
                vendor=VENDOR,
                stream=stream,
                subject=subject,
                key=key,
                meta=meta,
            )
            for number, raw in enumerate(rows, 1):
                try:
                    record = read(raw)
                except BadValueError as exc:
                    raise CorruptFileError(
                        f"record {number} cannot be read: {exc}",
                        vendor=VENDOR,
                        stream=stream,
                        subject=subject,
                        action="re-run (the job is forgotten and exported anew); if it repeats, "
                        "report it with this message",
                    ) from None
                yield record
                count += 1
                if count % PROGRESS_EVERY == 0:
                    LOGGER.info("impact.com: %s: %d records so far", subject, count)
        LOGGER.info(
            "impact.com: %s: %d records in %.1f s", subject, count, time.monotonic() - started
        )

    def close(self) -> None:
        """Release pooled connections."""
        self.http.close()
