"""Acoustic's units of work: BEX files on SFTP (standing export), or RRDE jobs per date window.

BEX: the definition is read (or created/updated when `manage_job_definition` is on), the SFTP
folder is listed twice `file_settle_seconds` apart, and files of the definition whose size and time
did not move are read oldest first (by the time in the name). Files still being written are left
for the next run; files the marker says are done are skipped.

Raw Recipient Data Export: one job per activity window, planned when the sync starts and run
through the shared job pipeline (`max_jobs_in_flight` at a time, job ids and result file names in
state before any poll); windows are handed back in order, each one's ZIP'd CSV read from the SFTP
folder by the pipeline's one failure rule for results (`JobPipeline.fetch`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tap_emailtracking.errors import AuthenticationError, CorruptFileError, UnusableResultError
from tap_emailtracking.formats.containers import open_container, unexpected_errors
from tap_emailtracking.formats.delimited import DELIMITERS, DelimitedReader
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
from tap_emailtracking.timestamps import LocalTimeFormatter, zone
from tap_emailtracking.transports.files import (
    FileSite,
    FileSiteSettings,
    RemoteFile,
    open_file_site,
)
from tap_emailtracking.vendors.acoustic.bex import (
    BexFile,
    Definition,
    FileMarker,
    candidates,
    empty_files,
    ensure_definition,
    settled,
)
from tap_emailtracking.vendors.acoustic.client import VENDOR, AcousticClient, find_first, xml_text
from tap_emailtracking.vendors.acoustic.rows import RowMapper, map_rows
from tap_emailtracking.vendors.acoustic.settings import AcousticSettings
from tap_emailtracking.windows import DateWindow, RunPlanner, in_flight_windows
from tap_emailtracking.workdirs import make_workdir

LOGGER = logging.getLogger("tap_emailtracking.acoustic")
LEDGER_NAME = "_acoustic_jobs"
PROGRESS_EVERY = 250_000
BEX_NEXT_RUN = (
    "the next run reads this file again (a standing export is not requested anew): ask Acoustic "
    "to replace it"
)
_T = TypeVar("_T")
RRDE_EVENT_ELEMENTS: dict[str, tuple[str, ...]] = {
    "emailSend": ("SENT",),
    "emailOpen": ("OPENS",),
    "emailClick": ("CLICKS",),
    "emailBounce": ("HARD_BOUNCES", "SOFT_BOUNCES", "MAIL_BLOCKS"),
    "emailOptOut": ("OPTOUTS",),
    "emailSuppressed": ("SUPPRESSED",),
}
RRDE_STATUS = {
    "WAITING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETE": JobState.DONE,
    "ERROR": JobState.FAILED,
    "CANCELED": JobState.FAILED,
    "CANCELLED": JobState.FAILED,
}


class WindowedStream(Protocol):
    """What the RRDE plan asks the stream: is it selected, and from which day."""

    @property
    def name(self) -> str:
        """The stream's name."""
        ...

    @property
    def selected(self) -> bool:
        """Selected in the catalog."""
        ...

    def window_bookmark(self) -> str | None:
        """The first day it has not fully emitted (None: from start_date)."""
        ...


class AcousticExports:
    """Everything one sync needs from Acoustic, created on first use."""

    def __init__(
        self,
        settings: AcousticSettings,
        *,
        state: dict[str, Any],
        checkpoint: Callable[[], None],
        start_date: date,
        end_date: date | None,
        temp_dir: str | None = None,
        limits: Limits | None = None,
        streams: Sequence[WindowedStream] = (),
        jobs: JobScheduler | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self._sleep = sleep
        self.client = AcousticClient(settings, sleep=sleep)
        self.tz = zone(settings.timezone)
        self.formatter = LocalTimeFormatter(self.tz)
        self.workdir = make_workdir(self, "acoustic", temp_dir)
        self._definition: Definition | None = None
        self._site: FileSite | None = None
        self.ledger = JobLedger(state, LEDGER_NAME, checkpoint)
        self.windows = RunPlanner(
            start_date=start_date,
            end_date=end_date,
            tz=self.tz,
            lookback_days=settings.lookback_days,
            window_days=settings.window_days,
            in_flight=lambda: in_flight_windows(self.ledger.entries()),
            now=now,
        )
        self.runner = JobRunner(
            vendor=VENDOR,
            ledger=self.ledger,
            policy=settings.poll_policy(),
            scheduler=jobs,
            sleep=sleep,
        )
        self._streams = streams
        self._raw_plan: list[DateWindow] = []
        self._raw_pipeline: JobPipeline | None = None
        self.skipped_rows = 0

    # -- shared -------------------------------------------------------------------------------

    def file_site(self, stream: str) -> FileSite:
        """The SFTP folder; with user `oauth` the current access token is the password."""
        s = self.settings
        password = (
            self.client.auth.token(stream=stream)
            if s.sftp_username == "oauth"
            else str(s.sftp_password)
        )
        return open_file_site(
            FileSiteSettings(
                protocol="sftp",
                host=s.sftp_host,
                port=s.sftp_port,
                username=s.sftp_username,
                password=password,
                folder=s.sftp_folder,
                timeout_seconds=s.request_timeout_seconds,
                sftp_known_hosts_file=s.sftp_known_hosts_file,
                sftp_host_key_check=s.sftp_host_key_check,
                max_attempts=s.max_attempts,
                config_key="acoustic",
                login_prefix="sftp_",
            ),
            vendor=VENDOR,
            stream=stream,
            sleep=self._sleep,
        )

    def on_site(self, stream: str, work: Callable[[FileSite], _T]) -> _T:
        """Run `work` on the SFTP folder, over one connection kept for the whole sync.

        In `oauth` mode the access token is the SFTP password: a token that expired or was revoked
        since it was cached fails the login exactly like a 401 fails an API call, so a refused
        login gets one fresh token and one retry.
        """
        for attempt in (1, 2):
            if self._site is None:
                self._site = self.file_site(stream)
            try:
                return work(self._site)
            except AuthenticationError:
                self.close_site()
                if attempt == 2 or self.settings.sftp_username != "oauth":
                    raise
                LOGGER.info(
                    "Acoustic: the SFTP login with the access token was refused; refreshing"
                )
                self.client.auth.invalidate()
        raise AssertionError("unreachable")  # pragma: no cover

    def close_site(self) -> None:
        """Close the SFTP connection (a later call opens a new one)."""
        if self._site is not None:
            self._site.close()
            self._site = None

    def _rows(
        self,
        path: Path,
        *,
        kind: str,
        delimiter: str,
        custom_columns: tuple[str, ...],
        name: str,
        stream: str,
        next_run: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Records of a downloaded file, whatever its container (ZIP, gzip or plain).

        `next_run` says what the next run does with a damaged file (default: asks for it anew).
        """
        with (
            unexpected_errors(vendor=VENDOR, stream=stream, subject=name),
            open_container(
                path,
                limits=self.limits,
                vendor=VENDOR,
                stream=stream,
                subject=name,
                next_run=next_run,
            ) as container,
            container.open(container.members[0]) as handle,
        ):
            reader = DelimitedReader(
                handle,
                delimiter=delimiter,
                vendor=VENDOR,
                stream_name=stream,
                subject=name,
                on_bad_row=self.settings.on_bad_row,
                limits=self.limits,
                next_run=next_run,
            )
            if not reader.header:
                return
            mapper = RowMapper(
                reader.header,
                kind=kind,
                custom_columns=custom_columns,
                formatter=self.formatter,
                file_name=name,
                stream=stream,
            )
            wanted = set(self.settings.event_types)
            rows = map_rows(reader.rows(), mapper, wanted=lambda t: t in wanted)
            for count, record in enumerate(rows, 1):
                yield record
                if count % PROGRESS_EVERY == 0:
                    LOGGER.info(
                        "Acoustic: %s: %d records so far (line %d), %.0f of %.0f MB of the "
                        "file read",
                        name,
                        count,
                        reader.line,
                        container.position() / 1e6,
                        container.size / 1e6,
                    )
            if reader.skipped_rows:
                self.skipped_rows += reader.skipped_rows
                LOGGER.warning(
                    "Acoustic: %s: %d malformed row(s) skipped (on_bad_row: skip)",
                    name,
                    reader.skipped_rows,
                )

    # -- BEX ----------------------------------------------------------------------------------

    def definition(self, stream: str) -> Definition:
        """The BEX job definition in force (read, or created/updated once per sync)."""
        if self._definition is None:
            self._definition = ensure_definition(self.client, self.settings, stream=stream)
        return self._definition

    def pending_files(self, marker: FileMarker, *, stream: str) -> list[BexFile]:
        """Finished files of the definition that are not done yet, oldest first."""
        definition = self.definition(stream)

        def two_listings(site: FileSite) -> tuple[list[RemoteFile], list[RemoteFile]]:
            first = site.list_files()
            if self.settings.file_settle_seconds <= 0:
                return first, first
            self._sleep(self.settings.file_settle_seconds)
            return first, site.list_files()

        first, second = self.on_site(stream, two_listings)
        found = candidates(second, definition)
        ready = settled(first, second)
        todo = [f for n, f in found.items() if n in ready and not marker.is_done(f)]
        empty = {n for n, f in found.items() if f.size == 0 and not marker.is_done(f)}
        empty |= self.on_site(stream, lambda site: empty_files(todo, site.size))
        for name in sorted(set(found) - ready | empty):
            LOGGER.info(
                "Acoustic: %s is %s; left for the next run",
                name,
                "empty" if name in empty else "still being written",
            )
        marker.note_empty((f for n, f in found.items() if n in empty), listed=found)
        pending = sorted(f for f in todo if f.name not in empty)
        LOGGER.info(
            "Acoustic: %d BEX file(s) of definition %s in %s, %d to read",
            len(found),
            definition.definition_id,
            self.settings.sftp_folder,
            len(pending),
        )
        return pending

    def bex_records(self, file: BexFile, *, stream: str) -> Iterator[dict[str, Any]]:
        """Every record of one BEX file."""
        definition = self.definition(stream)
        local = self.workdir / re.sub(r"[^A-Za-z0-9_.-]", "_", file.name)
        try:
            self.on_site(stream, lambda site: site.download(file.name, local))
            extension = Path(file.name.lower().removesuffix(".gz").removesuffix(".zip")).suffix
            fmt = {".csv": "CSV", ".psv": "PSV", ".tsv": "TSV"}.get(
                extension, definition.file_format
            )
            started = time.monotonic()
            count = 0
            for record in self._rows(
                local,
                kind="bex",
                delimiter=DELIMITERS[fmt],
                custom_columns=definition.custom_columns,
                name=file.name,
                stream=stream,
                next_run=BEX_NEXT_RUN,
            ):
                count += 1
                yield record
            LOGGER.info(
                "Acoustic: %s: %d records in %.1f s", file.name, count, time.monotonic() - started
            )
        finally:
            local.unlink(missing_ok=True)

    # -- Raw Recipient Data Export ------------------------------------------------------------

    def start_jobs(self) -> None:
        """The sync starts: submit (or resume) the first Raw Recipient Data Export jobs now."""
        if self.settings.export_mode == "raw_recipient_data":
            self.raw_pipeline().start()

    def raw_pipeline(self) -> JobPipeline:
        """The sync's RRDE jobs: one per window the selected stream still needs, in order."""
        if self._raw_pipeline is None:
            stream = next((s for s in self._streams if s.selected), None)
            name = None if stream is None else stream.name
            if stream is not None:
                self._raw_plan = self.windows.plan(stream.window_bookmark())
            units = [self._raw_unit(window, name) for window in self._raw_plan]
            # Jobs of windows the stream no longer plans (committed, or settings changed) go;
            # with the stream deselected nothing is planned, and its jobs are kept for later.
            plan = self.runner.whole_plan if stream is not None else self.runner.pipeline
            self._raw_pipeline = plan(units, max_in_flight=self.settings.max_jobs_in_flight)
            LOGGER.info(
                "Acoustic: %d Raw Recipient Data Export job(s) to run, up to %d at a time",
                len(self._raw_plan),
                self.settings.max_jobs_in_flight,
            )
        return self._raw_pipeline

    def _raw_unit(self, window: DateWindow, stream: str | None) -> Unit:
        return Unit(
            window.key(),
            RawRecipientJob(self, window, stream=stream),
            f"activity {window.start} to {window.end}",
            stream,
            {"activity_start": window.start.isoformat(), "activity_end": window.end.isoformat()},
        )

    def raw_windows(self, *, stream: str) -> Iterator[tuple[DateWindow, Iterator[dict[str, Any]]]]:
        """Each planned window with its records, in order, while later windows' jobs run.

        The caller reads a window's records, commits the window and drops its ledger entry
        before asking for the next one.
        """
        pipeline = self.raw_pipeline()
        for window in list(self._raw_plan):
            yield window, self._raw_records(window, pipeline, stream=stream)

    def _raw_records(
        self, window: DateWindow, pipeline: JobPipeline, *, stream: str
    ) -> Iterator[dict[str, Any]]:
        """The records of a window's ZIP'd CSV, once its job is done."""
        key = window.key()
        local = self.workdir / re.sub(r"[^A-Za-z0-9_.-]", "_", f"rrde-{key}.zip")

        def download(_: Unit, status: JobStatus) -> str:
            file_name = str(status.result or "")
            self.on_site(stream, lambda site: site.download(file_name, local))
            return file_name

        try:
            file_name = pipeline.fetch(key, download)
            try:
                yield from self._rows(
                    local,
                    kind="rrde",
                    delimiter=",",
                    custom_columns=self.settings.custom_columns,
                    name=file_name,
                    stream=stream,
                )
            except UnusableResultError:
                pipeline.result_unusable(key)  # the same file would fail again: ask anew
                raise
        finally:
            local.unlink(missing_ok=True)

    def close(self) -> None:
        """Close connections (the work folder goes with this object)."""
        self.close_site()
        self.client.close()


class RawRecipientJob:
    """One window's RawRecipientDataExport, as the shared job lifecycle sees it."""

    def __init__(self, exports: AcousticExports, window: DateWindow, *, stream: str | None) -> None:
        self.exports = exports
        self.window = window
        self.stream = stream

    def submit(self) -> Submission:
        s = self.exports.settings
        events = "".join(
            f"<{element}/>"
            for event_type in s.event_types
            for element in RRDE_EVENT_ELEMENTS[event_type]
        )
        columns = "".join(f"<COLUMN><NAME>{xml_text(c)}</NAME></COLUMN>" for c in s.custom_columns)
        start, end = self.window.start, self.window.end
        inner = (
            f"<EVENT_DATE_START>{start:%m/%d/%Y} 00:00:00</EVENT_DATE_START>"
            f"<EVENT_DATE_END>{end:%m/%d/%Y} 23:59:59</EVENT_DATE_END>"
            "<MOVE_TO_FTP/><EXPORT_FORMAT>0</EXPORT_FORMAT>"
            + events
            + (f"<COLUMNS>{columns}</COLUMNS>" if columns else "")
        )
        document = self.exports.client.xml_call("RawRecipientDataExport", inner, stream=self.stream)
        job_id = find_first(document, "JOB_ID")
        file_path = find_first(document, "FILE_PATH")
        if not job_id or not file_path:
            raise CorruptFileError(
                "RawRecipientDataExport answered without JOB_ID or FILE_PATH",
                vendor=VENDOR,
                stream=self.stream,
                subject=f"window {self.window.key()}",
                action="re-run; if it repeats, contact Acoustic support",
            )
        # FILE_PATH is bare or prefixed with /download/ (both seen): a name in the folder. Any
        # other absolute path is kept as it is, so the file site refuses it as unsafe.
        return Submission(job_id, result=file_path.removeprefix("/download/"))

    def check(self, job_id: str) -> JobStatus:
        document = self.exports.client.xml_call(
            "GetJobStatus", f"<JOB_ID>{xml_text(job_id)}</JOB_ID>", stream=self.stream
        )
        raw = (find_first(document, "JOB_STATUS") or "").upper()
        return JobStatus(
            RRDE_STATUS.get(raw, JobState.UNKNOWN),
            raw or "(empty)",
            detail=find_first(document, "JOB_DESCRIPTION"),
        )
