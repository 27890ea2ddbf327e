"""ExactTarget's unit of work: one activity window → one BulkAsync batch → one ZIP → many streams.

One `ExactTargetExports` lives for the whole sync. The first selected stream that needs a window
runs its batch through the shared job lifecycle (batch id in state before polling), downloads the
ZIP once, verifies it, and parses it once: its own records are yielded straight away and the
records of every other selected stream that will need this window are spooled to disk. Later
streams read their spool. The batch id leaves state only when every stream that needed the window
has committed it, so a crash in between resumes the same batch rather than submitting another.

A damaged or vanished result file drops the batch id (a new batch will be submitted next run,
because the same file would fail again); a network failure keeps it (the next run re-downloads).
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
from tap_emailtracking.jobs import JobLedger, JobRunner
from tap_emailtracking.limits import Limits
from tap_emailtracking.spools import SpoolWriter, read_spool
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
            sleep=sleep,
        )
        self.workdir = make_workdir(self, "et", temp_dir)
        self._spools: dict[str, dict[str, Path]] = {}
        self._waiting: dict[str, set[str]] = {}
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

    # -- records ------------------------------------------------------------------------------

    def records(self, kind: str, window: DateWindow, *, stream: str) -> Iterator[ExportRecord]:
        """All records of one kind for one window, from a spool or from the vendor."""
        unit = self.unit(window)
        spool = self._spools.get(unit, {}).pop(kind, None)
        if spool is not None:
            LOGGER.info(
                "ExactTarget: %s reads %s from this run's export", stream, self.label(window)
            )
            yield from read_spool(spool)
            spool.unlink(missing_ok=True)
            return
        yield from self._fetch(kind, window, unit, stream)

    def _fetch(
        self, kind: str, window: DateWindow, unit: str, stream: str
    ) -> Iterator[dict[str, Any]]:
        self._used_units.add(unit)
        sends = self.sends_for(window)
        label = self.label(window)
        unit_info = {
            "activity_start": window.start.isoformat(),
            "activity_end": window.end.isoformat(),
        }
        if sends is not None:
            unit_info["sends_start"] = sends.start.isoformat()
        status = self.runner.run(
            unit,
            TrackingExportJob(self.client, window, sends, stream=stream),
            stream=stream,
            label=label,
            unit_info=unit_info,
        )
        job_id = str((self.ledger.get(unit) or {}).get("job_id", "?"))
        filename = status.result or ""
        subject = f"batch {job_id}, file {filename}, {label}"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", unit)
        archive_path = self.workdir / f"{safe}.zip"
        try:
            with open_file_site(self.settings.files, vendor=VENDOR, stream=stream) as site:
                site.download(filename, archive_path)
        except UnusableResultError:
            self.ledger.drop(unit)  # missing, refused or damaged: the next run asks anew
            raise
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
            self.ledger.drop(unit)
            raise
        except BaseException:
            spool.discard()
            raise
        finally:
            archive_path.unlink(missing_ok=True)
        spool.close()
        self._spools[unit] = dict(spool.paths)
        self._waiting[unit] = set(others)
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
        """A stream emitted every record of a window; forget the batch once nobody needs it."""
        unit = self.unit(window)
        waiting = self._waiting.get(unit)
        if waiting is not None:
            waiting.discard(kind)
        if not waiting:
            self._waiting.pop(unit, None)
            self.ledger.drop(unit)

    def finish_stream(self, kind: str) -> None:
        """A stream is done for this run: delete spools it did not use, release windows."""
        for unit in list(self._waiting):
            self._waiting[unit].discard(kind)
            path = self._spools.get(unit, {}).pop(kind, None)
            if path is not None:
                path.unlink(missing_ok=True)
            if not self._waiting[unit]:
                del self._waiting[unit]
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
