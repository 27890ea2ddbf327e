"""Pinpointe's units of work: one async export job per list, segment, tag or newsletter send.

One `PinpointeExports` lives for the whole sync. When the sync starts it enumerates what the
selected streams need (lists, segments, tags, sends: paged listing calls, read once per sync and
also emitted by the listing streams), asks each selected export stream for its units in the order
it will consume them, and hands them all to one shared job pipeline: up to `max_jobs_in_flight`
jobs in flight, every job id in state before any poll, every waiting job polled in one paged
AsyncJobStatus call. A done job's result link is downloaded over HTTP to disk (resumed with
Range after a drop) and read as a stream: JSON (array, holder object or lines) or CSV.

Results follow the pipeline's one failure rule (`JobPipeline.fetch`); "Jobs not found" for a job
in state is the lifecycle's GONE, so the job is submitted again once with a warning.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Protocol

from tap_emailtracking.errors import CorruptFileError, UnusableResultError
from tap_emailtracking.formats.containers import open_container, unexpected_errors
from tap_emailtracking.formats.records import json_or_csv_rows
from tap_emailtracking.jobs import (
    JobLedger,
    JobPipeline,
    JobRunner,
    JobScheduler,
    JobState,
    JobStatus,
    Submission,
    Unit,
)
from tap_emailtracking.limits import Limits
from tap_emailtracking.transports.http import VendorHttp
from tap_emailtracking.transports.http_files import HttpFileSite, http_site_settings
from tap_emailtracking.vendors.pinpointe.client import VENDOR, PinpointeClient
from tap_emailtracking.vendors.pinpointe.rows import (
    LIST_FIELDS,
    SEGMENT_FIELDS,
    SEND_FIELDS,
    TAG_FIELDS,
    ActivityMapper,
    BadValueError,
    FieldMapper,
    Fields,
    csv_subscriber,
    listing_record,
    subscriber_record,
    utc_time,
)
from tap_emailtracking.vendors.pinpointe.settings import PinpointeSettings
from tap_emailtracking.workdirs import make_workdir

LOGGER = logging.getLogger("tap_emailtracking.pinpointe")
LEDGER_NAME = "_pinpointe_jobs"
PROGRESS_EVERY = 250_000
UTC = timezone.utc


class Listing:
    """An enumeration call and how its records read."""

    def __init__(
        self, requesttype: str, method: str, fields: Fields, details: dict[str, Any] | None = None
    ) -> None:
        self.requesttype = requesttype
        self.method = method
        self.mapper = FieldMapper(fields)
        self.details = details


LISTINGS = {
    "lists": Listing("Lists", "GetLists", LIST_FIELDS),
    "segments": Listing("Segments", "GetSegments", SEGMENT_FIELDS),
    "tags": Listing("Tags", "GetTags", TAG_FIELDS, {"includeshared": True}),
}
SENDS = Listing("Newsletters", "GetNewslettersSent", SEND_FIELDS)
# kind -> (requesttype, requestmethod, the details member naming the unit, as a list?)
ASYNC_CALLS: dict[str, tuple[str, str, str, bool]] = {
    "lists": ("Lists", "GetListSubscribersAsync", "list", True),
    "segments": ("Segments", "GetSegmentSubscribersAsync", "segmentid", True),
    "tags": ("Tags", "GetTagSubscribersAsync", "tag", True),
    "activity": ("Newsletters", "GetNewsletterContactDataSummaryAsync", "stat", False),
}
UNIT_COLUMNS = {"lists": "list_id", "segments": "segment_id", "tags": "tag_id"}
# kind -> the word naming its units in the ledger (`list:12`, `send:5001`), and back.
UNIT_WORDS = {"lists": "list", "segments": "segment", "tags": "tag", "activity": "send"}
UNIT_KINDS = {word: kind for kind, word in UNIT_WORDS.items()}
SUBSCRIBER_OPTIONS = {"status": "any", "include_membership": True, "customfields": "all"}


class ExportStreamPlan(Protocol):
    """What the pipeline asks each Pinpointe export stream: is it selected, and its units."""

    @property
    def name(self) -> str:
        """The stream's name."""
        ...

    @property
    def selected(self) -> bool:
        """Selected in the catalog."""
        ...

    def plan(self, exports: PinpointeExports) -> list[Unit]:
        """Its units of work for this run, in the order it will ask for them."""
        ...


class AsyncExport:
    """One unit's async export, as the shared job lifecycle sees it."""

    def __init__(
        self,
        exports: PinpointeExports,
        kind: str,
        unit_id: str,
        *,
        options: Mapping[str, Any],
        stream: str | None,
    ) -> None:
        self.exports = exports
        self.kind = kind
        self.unit_id = unit_id
        self.options = dict(options)
        self.stream = stream

    def submit(self) -> Submission:
        requesttype, method, member, as_list = ASYNC_CALLS[self.kind]
        settings = self.exports.settings
        details = {
            member: [self.unit_id] if as_list else self.unit_id,
            **self.options,
            "notify": {"type": settings.notify_type, "value": settings.notify_value},
        }
        return self.exports.client.submit(requesttype, method, details, stream=self.stream)

    def check(self, job_id: str) -> JobStatus:
        answers = self.exports.client.statuses([job_id], stream=self.stream)
        return answers.get(job_id, JobStatus(JobState.GONE, "Jobs not found"))


class PinpointeExports:
    """Enumerate once, run every unit's export job through one pipeline, read its result."""

    def __init__(
        self,
        settings: PinpointeSettings,
        *,
        state: dict[str, Any],
        checkpoint: Callable[[], None],
        start_date: date,
        end_date: date | None,
        streams: Sequence[ExportStreamPlan] = (),
        temp_dir: str | None = None,
        limits: Limits | None = None,
        jobs: JobScheduler | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self.start_date = start_date
        self.end_date = end_date
        self.now = now
        self._sleep = sleep
        self._streams = streams
        self.http = VendorHttp(vendor=VENDOR, policy=settings.http_policy(), sleep=sleep)
        self.client = PinpointeClient(settings, self.http)
        self.ledger = JobLedger(state, LEDGER_NAME, checkpoint)
        self.runner = JobRunner(
            vendor=VENDOR,
            ledger=self.ledger,
            policy=settings.poll_policy(),
            scheduler=jobs,
            sleep=sleep,
        )
        self.workdir = make_workdir(self, "pinpointe", temp_dir)
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self._sends: tuple[date, list[dict[str, Any]]] | None = None
        self._pipeline: JobPipeline | None = None

    # -- enumeration --------------------------------------------------------------------------

    def listing(self, kind: str, *, stream: str | None) -> list[dict[str, Any]]:
        """Every list, segment or tag as emitted (read once per sync)."""
        if kind not in self._listings:
            call = LISTINGS[kind]
            self._listings[kind] = self._read_listing(call, call.details, stream=stream)
            LOGGER.info("Pinpointe: %d %s", len(self._listings[kind]), kind)
        return self._listings[kind]

    def sends(self, since: date, *, stream: str | None) -> list[dict[str, Any]]:
        """Sends started on `since` (UTC) or later, up to end_date, oldest first.

        GetNewslettersSent counts back from now (`intervalcount` days); the sends of the
        earliest day any stream asked for are read once per sync and filtered here.
        """
        if self._sends is None or since < self._sends[0]:
            today = self.now().astimezone(UTC).date()
            days = max(1, (today - since).days + 1)
            details = {"intervalcount": days, "intervalunits": "days"}
            self._sends = (since, self._read_listing(SENDS, details, stream=stream))
        until = None if self.end_date is None else self.end_date + timedelta(days=1)
        chosen = [
            send
            for send in self._sends[1]
            if send["started_at"] is not None
            and send["started_at"] >= f"{since.isoformat()}T"
            and (until is None or send["started_at"] < f"{until.isoformat()}T")
        ]
        return sorted(chosen, key=send_order)

    def _read_listing(
        self, call: Listing, details: Mapping[str, Any] | None, *, stream: str | None
    ) -> list[dict[str, Any]]:
        what = f"{call.requesttype}/{call.method}"
        records: list[dict[str, Any]] = []
        for page in self.client.pages(
            call.requesttype,
            call.method,
            details,
            stream=stream,
            page_size=self.settings.page_size,
        ):
            for number, raw in enumerate(page, len(records) + 1):
                try:
                    records.append(listing_record(raw, call.mapper))
                except BadValueError as exc:
                    raise CorruptFileError(
                        f"{what} answered a record ({number}) that cannot be read: {exc}",
                        vendor=VENDOR,
                        stream=stream,
                        action="re-run; if it repeats, report it with this message",
                    ) from None
        return records

    # -- planning -----------------------------------------------------------------------------

    def unit(
        self,
        kind: str,
        unit_id: str,
        label: str,
        *,
        stream: str,
        options: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> Unit:
        """A unit of work: `list:<id>` (`segment:`, `tag:`, `send:`) in the ledger, its job, and
        what it keeps in state."""
        job = AsyncExport(self, kind, unit_id, options=options or {}, stream=stream)
        return Unit(f"{UNIT_WORDS[kind]}:{unit_id}", job, label, stream, dict(info or {}))

    def start_jobs(self) -> None:
        """The sync starts: submit (or resume) the first export jobs now."""
        self.pipeline().start()

    def pipeline(self) -> JobPipeline:
        """Every selected export stream's units, streams in the SDK's order (by name)."""
        if self._pipeline is None:
            units: list[Unit] = []
            for stream in sorted(self._streams, key=lambda s: s.name):
                if stream.selected:
                    units += stream.plan(self)
            self._pipeline = self.runner.whole_plan(
                units,
                max_in_flight=self.settings.max_jobs_in_flight,
                check_many=lambda ids: self.client.statuses(ids, stream=None),
            )
            LOGGER.info(
                "Pinpointe: %d export job(s) to run, up to %d at a time",
                len(units),
                self.settings.max_jobs_in_flight,
            )
        return self._pipeline

    # -- results ------------------------------------------------------------------------------

    def records(self, unit: Unit, *, stream: str) -> Iterator[dict[str, Any]]:
        """The records of a unit's result file, once its job is done."""
        pipeline = self.pipeline()
        local = self.workdir / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{unit.key}.result")

        def download(_: Unit, status: JobStatus) -> str:
            settings = http_site_settings(
                self.settings.api_url,
                timeout_seconds=self.settings.request_timeout_seconds,
                max_attempts=self.settings.max_attempts,
                config_key="pinpointe",
            )
            with HttpFileSite(settings, vendor=VENDOR, stream=stream, sleep=self._sleep) as site:
                site.download(str(status.result or ""), local)
            return str(status.result or "")

        try:
            pipeline.fetch(unit.key, download)
            entry = self.ledger.get(unit.key) or {}
            job_id = str(entry.get("job_id", "?"))
            subject = f"job {job_id}, {unit.label}"
            try:
                yield from self._read_result(local, unit, entry, subject=subject, stream=stream)
            except UnusableResultError:
                pipeline.result_unusable(unit.key)  # the same file would fail again: ask anew
                raise
        finally:
            local.unlink(missing_ok=True)

    def _read_result(
        self,
        path: Path,
        unit: Unit,
        entry: Mapping[str, Any],
        *,
        subject: str,
        stream: str,
    ) -> Iterator[dict[str, Any]]:
        word, unit_id = unit.key.split(":", 1)
        kind = UNIT_KINDS[word]
        job_id = str(entry.get("job_id", ""))
        started = time.monotonic()
        count = 0
        with (
            unexpected_errors(vendor=VENDOR, stream=stream, subject=subject),
            open_container(
                path, limits=self.limits, vendor=VENDOR, stream=stream, subject=subject
            ) as container,
            container.open(container.members[0]) as handle,
        ):
            raws = self._raw_records(handle, subject=subject, stream=stream)
            if kind == "activity":
                mapper = ActivityMapper(unit_id, job_id)
                convert: Callable[[dict[str, Any]], Iterator[dict[str, Any]]] = mapper.records
            else:
                snapshot_at = str(entry.get("submitted_at") or self.now().isoformat())
                snapshot_at = utc_time(snapshot_at) or snapshot_at
                column = UNIT_COLUMNS[kind]

                def convert(raw: dict[str, Any]) -> Iterator[dict[str, Any]]:
                    yield subscriber_record(
                        raw,
                        unit_column=column,
                        unit_id=unit_id,
                        snapshot_at=snapshot_at,
                        job_id=job_id,
                    )

            for number, raw in enumerate(raws, 1):
                try:
                    records = list(convert(raw))
                except BadValueError as exc:
                    raise CorruptFileError(
                        f"record {number} cannot be read: {exc}",
                        vendor=VENDOR,
                        stream=stream,
                        subject=subject,
                        action="re-run (the job is forgotten and exported anew); if it repeats, "
                        "report it with this message",
                    ) from None
                for record in records:
                    yield record
                    count += 1
                    if count % PROGRESS_EVERY == 0:
                        LOGGER.info(
                            "Pinpointe: %s: %d records so far, %.0f of %.0f MB read",
                            unit.label,
                            count,
                            container.position() / 1e6,
                            container.size / 1e6,
                        )
        LOGGER.info(
            "Pinpointe: %s: %d records in %.1f s", unit.label, count, time.monotonic() - started
        )

    def _raw_records(
        self, handle: IO[bytes], *, subject: str, stream: str
    ) -> Iterator[dict[str, Any]]:
        """The file's rows (JSON, or CSV whose extra columns are custom fields)."""
        meta: dict[str, Any] = {}
        rows = json_or_csv_rows(
            handle, limits=self.limits, vendor=VENDOR, stream=stream, subject=subject, meta=meta
        )
        for number, row in enumerate(rows):
            if meta["format"] == "csv":
                yield csv_subscriber(list(row), list(row.values()))
            elif number > 0 or not is_empty_holder(row):  # an empty result's holder
                yield row

    def close(self) -> None:
        """Close connections (the work folder goes with this object)."""
        self.http.close()


def send_order(send: Mapping[str, Any]) -> tuple[str, str]:
    """Sends in start order; a stat id breaks ties (numerically when it is a number)."""
    stat = str(send.get("stat_id") or "")
    return str(send.get("started_at") or ""), stat.rjust(20, "0") if stat.isdigit() else stat


def is_empty_holder(raw: Mapping[str, Any]) -> bool:
    """`{"count": "0", "subscribers": []}`: a holder object of an empty result, not a record."""
    return any(value == [] for value in raw.values()) and not any(
        str(key).lower() in ("subscriberid", "emailaddress") for key in raw
    )
