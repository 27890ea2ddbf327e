"""ExactTarget's unit of work: one activity window → one BulkAsync batch → one ZIP → many streams.

One `ExactTargetExports` lives for the whole sync. When the sync starts it plans every window the
selected streams need, in the order they will ask for them, and the shared job pipeline submits
their batches ahead (`max_jobs_in_flight` at a time, every batch id in state before any poll).
The first stream that needs a window downloads its ZIP once and parses it once: its own records
are yielded straight away and those of every other selected stream that will need the window are
spooled to disk (`spools.FanOut`). The batch id leaves state only when every stream that needed
the window has committed it, so a crash in between resumes the same batch.

Results follow the pipeline's one failure rule (`JobPipeline.fetch`): an expired ZIP is asked for
again once, a damaged one forgets the batch, a dropped connection keeps it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from tap_emailtracking.errors import UnusableResultError
from tap_emailtracking.formats.containers import open_container, unexpected_errors
from tap_emailtracking.jobs import JobLedger, JobPipeline, JobRunner, JobScheduler, JobStatus, Unit
from tap_emailtracking.limits import Limits
from tap_emailtracking.spools import FanOut, SpoolWriter, read_spool
from tap_emailtracking.streams import ExportRecord
from tap_emailtracking.timestamps import LocalTimeFormatter, zone
from tap_emailtracking.transports.files import open_file_site
from tap_emailtracking.transports.http import VendorHttp
from tap_emailtracking.vendors.exacttarget.client import (
    VENDOR,
    ExactTargetClient,
    TrackingExportJob,
    et_date,
)
from tap_emailtracking.vendors.exacttarget.parser import ExportParser
from tap_emailtracking.vendors.exacttarget.settings import ExactTargetSettings
from tap_emailtracking.windows import DateWindow, RunPlanner, in_flight_windows
from tap_emailtracking.workdirs import make_workdir

LOGGER = logging.getLogger("tap_emailtracking.exacttarget")
LEDGER_NAME = "_exacttarget_batches"
PROGRESS_EVERY = 250_000


class FanOutStream(Protocol):
    """What the fan-out asks each ExactTarget stream: is it still to run, and from which day."""

    @property
    def name(self) -> str:
        """The stream's name."""
        ...

    @property
    def kind(self) -> str:
        """The record type it emits."""
        ...

    @property
    def selected(self) -> bool:
        """Selected in the catalog."""
        ...

    @property
    def finished(self) -> bool:
        """Done for this run."""
        ...

    def bookmark(self) -> str | None:
        """The first day it has not fully emitted."""
        ...


class ExactTargetExports:
    """Plan windows, run each window's batch once per sync, and fan its records out."""

    def __init__(
        self,
        settings: ExactTargetSettings,
        *,
        state: dict[str, Any],
        checkpoint: Callable[[], None],
        start_date: date,
        end_date: date | None,
        streams: Sequence[FanOutStream],
        temp_dir: str | None = None,
        limits: Limits | None = None,
        jobs: JobScheduler | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self._streams = streams
        self.tz = zone(settings.timezone)
        self.formatter = LocalTimeFormatter(self.tz)
        self.http = VendorHttp(
            vendor=VENDOR,
            policy=settings.http_policy(),
            sleep=sleep,
        )
        self.client = ExactTargetClient(settings, self.http)
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
        self.workdir = make_workdir(self, "et", temp_dir)
        self.fan_out = FanOut()
        self._pipeline: JobPipeline | None = None
        self._used_units: set[str] = set()

    # -- planning -----------------------------------------------------------------------------

    def sends_for(self, window: DateWindow) -> DateWindow | None:
        """The send-date range for a window (None: a single <daterange>)."""
        if self.settings.send_lookback_days == 0:
            return None
        return DateWindow(
            window.start - timedelta(days=self.settings.send_lookback_days), window.end
        )

    def unit(self, window: DateWindow) -> str:
        """The window's key in the batch ledger and the spool cache."""
        sends = self.sends_for(window)
        return window.key() + ("" if sends is None else f";sends={sends.key()}")

    def label(self, window: DateWindow) -> str:
        """How logs and errors name a window."""
        text = f"activity {et_date(window.start)}-{et_date(window.end)}"
        sends = self.sends_for(window)
        if sends is not None:
            text += f", sends {et_date(sends.start)}-{et_date(sends.end)}"
        return text

    def job_unit(self, window: DateWindow, stream: str) -> Unit:
        """The window's batch, as the job pipeline plans it."""
        sends = self.sends_for(window)
        info = {"activity_start": window.start.isoformat(), "activity_end": window.end.isoformat()}
        if sends is not None:
            info["sends_start"] = sends.start.isoformat()
        job = TrackingExportJob(self.client, window, sends, stream=stream)
        return Unit(self.unit(window), job, self.label(window), stream, info)

    def start_jobs(self) -> None:
        """The sync starts: submit (or resume) the first batches now."""
        self.pipeline().start()

    def pipeline(self) -> JobPipeline:
        """The sync's batches: every window the selected streams need, in the order they ask.

        Streams sync one after another (the SDK sorts them by name), each in bookmark order: the
        first stream's windows come first, then the windows a later stream needs that an earlier
        one did not plan. A window's batch names the stream that asks for it first.
        """
        if self._pipeline is None:
            planned: dict[str, Unit] = {}
            for stream in sorted(self._streams, key=lambda s: s.name):
                if stream.selected and not stream.finished:
                    for window in self.windows.plan(stream.bookmark()):
                        if self.unit(window) not in planned:
                            planned[self.unit(window)] = self.job_unit(window, stream.name)
            self._pipeline = self.runner.pipeline(
                planned.values(), max_in_flight=self.settings.max_jobs_in_flight
            )
            LOGGER.info(
                "ExactTarget: %d batch(es) to run, up to %d at a time",
                len(planned),
                self.settings.max_jobs_in_flight,
            )
        return self._pipeline

    # -- records ------------------------------------------------------------------------------

    def records(self, kind: str, window: DateWindow, *, stream: str) -> Iterator[ExportRecord]:
        """All records of one kind for one window, from a spool or from the vendor."""
        unit = self.unit(window)
        spool = self.fan_out.take(unit, kind)
        if spool is not None:
            LOGGER.info(
                "ExactTarget: %s reads %s from this run's export", stream, self.label(window)
            )
            yield from read_spool(spool)
            spool.unlink(missing_ok=True)
            return
        yield from self._fetch(kind, window, unit, stream)

    def _download(self, unit: str, window: DateWindow, stream: str) -> tuple[Path, str]:
        """Wait for the window's batch and download its ZIP (one failure rule: `fetch`)."""
        pipeline = self.pipeline()
        if not pipeline.planned(unit):
            pipeline.add([self.job_unit(window, stream)])
        archive_path = self.workdir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', unit)}.zip"

        def download(_: Unit, status: JobStatus) -> str:
            with open_file_site(self.settings.files, vendor=VENDOR, stream=stream) as site:
                site.download(status.result or "", archive_path)
            return status.result or ""

        return archive_path, pipeline.fetch(unit, download)

    def _fetch(
        self, kind: str, window: DateWindow, unit: str, stream: str
    ) -> Iterator[dict[str, Any]]:
        self._used_units.add(unit)
        label = self.label(window)
        archive_path, filename = self._download(unit, window, stream)
        job_id = str((self.ledger.get(unit) or {}).get("job_id", "?"))
        subject = f"batch {job_id}, file {filename}, {label}"
        safe = archive_path.stem
        others = {
            other
            for other, bookmark in self._pending().items()
            if other != kind and window in self.windows.plan(bookmark)
        }
        spool = SpoolWriter(self.workdir, safe, others)
        wanted = others | {kind}
        emitted = parsed = 0
        next_report = PROGRESS_EVERY
        started = time.monotonic()
        try:
            with (
                unexpected_errors(vendor=VENDOR, stream=stream, subject=subject),
                open_container(
                    archive_path,
                    limits=self.limits,
                    vendor=VENDOR,
                    stream=stream,
                    subject=subject,
                    suffix=".xml",
                    kinds=("zip",),
                ) as container,
            ):
                for name in container.members:
                    parser = ExportParser(
                        self.formatter, stream=stream, subject=subject, limits=self.limits
                    )
                    with container.open(name) as member:
                        for batch in parser.parse(member, wanted):
                            parsed += len(batch)
                            spooled: dict[str, list[dict[str, Any]]] = {}
                            for record_kind, record in batch:
                                if record_kind == kind:
                                    yield record
                                    emitted += 1
                                else:
                                    spooled.setdefault(record_kind, []).append(record)
                            for spool_kind, records in spooled.items():
                                spool.write(spool_kind, records)
                            if parsed >= next_report:
                                next_report += PROGRESS_EVERY
                                LOGGER.info(
                                    "ExactTarget: %s: %d records parsed so far (%d %s), %.0f of "
                                    "%.0f MB of the ZIP read (%.0f s)",
                                    label,
                                    parsed,
                                    emitted,
                                    stream,
                                    container.position() / 1e6,
                                    container.size / 1e6,
                                    time.monotonic() - started,
                                )
        except UnusableResultError:
            spool.discard()
            self.pipeline().result_unusable(unit)  # the same file would fail again
            raise
        except BaseException:
            spool.discard()
            raise
        finally:
            archive_path.unlink(missing_ok=True)
        spool.close()
        self.fan_out.spooled(unit, spool)
        LOGGER.info(
            "ExactTarget: %s parsed in %.1f s: %d %s records%s",
            label,
            time.monotonic() - started,
            emitted,
            stream,
            "".join(f", {n} {k} spooled" for k, n in sorted(spool.counts.items())),
        )

    # -- bookkeeping --------------------------------------------------------------------------

    def committed(self, kind: str, window: DateWindow) -> None:
        """A stream emitted every record of a window; forget the batch once nobody needs it.

        Called inside the stream's commit, which emits the STATE (see `ExportStream.commit`).
        """
        unit = self.unit(window)
        if self.fan_out.committed(unit, kind):
            self.ledger.drop(unit, checkpoint=False)

    def finish_stream(self, kind: str) -> None:
        """A stream is done for this run: delete spools it did not use, release windows."""
        for unit in self.fan_out.finish(kind):
            self.ledger.drop(unit)
        if not self._pending():
            # Every selected stream is done: a batch this run never used belongs to a window no
            # stream plans any more (settings changed); forget it rather than keep it forever.
            for unit in self.ledger.units():
                if unit not in self._used_units:
                    LOGGER.info("ExactTarget: forgetting batch of unused window %s", unit)
                    self.ledger.drop(unit)

    def _pending(self) -> dict[str, str | None]:
        """Kinds of the selected streams not finished in this run, with their bookmarks."""
        return {
            stream.kind: stream.bookmark()
            for stream in self._streams
            if stream.selected and not stream.finished
        }

    def close(self) -> None:
        """Close connections (the work folder goes with this object)."""
        self.http.close()
