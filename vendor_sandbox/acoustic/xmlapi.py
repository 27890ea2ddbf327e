"""Acoustic's XML API: ``RawRecipientDataExport`` and ``GetJobStatus`` at ``POST /XMLAPI``.

The form field ``xml=<Envelope>`` or a raw XML body.  Poll 1 of a job answers WAITING, polls
2..N-1 RUNNING, poll N (``polls_until_complete``) COMPLETE, when the ZIP is written to
``<download>/<FILE_PATH>``; with durations in ``jobs`` (:class:`~vendor_sandbox.jobs.JobSettings`)
a job is WAITING, RUNNING and COMPLETE by ``clock`` instead, measured from its submission.  Faults
are in-band (HTTP 200, ``SUCCESS`` false, ``<Fault>``).  A submission while ``jobs.limit`` jobs
are waiting or running answers errorid 156 ("Unable to create the export job", [I]: the docs
give the code but no job limit; the documented limit is 10 concurrent API requests).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from vendor_sandbox.acoustic.base import MAX_BODY_BYTES, AcousticState
from vendor_sandbox.jobs import DONE, QUEUED, JobBoard, JobBoardCounters, JobLimitError

FIRST_JOB_ID = 72649
#: RawRecipientDataExport event elements -> the ``Event Type`` words they select.
RRDE_ELEMENTS = {
    "SENT": "Sent",
    "OPENS": "Open",
    "CLICKS": "Click Through",
    "HARD_BOUNCES": "Hard Bounce",
    "SOFT_BOUNCES": "Soft Bounce",
    "MAIL_BLOCKS": "Mail Block",
    "OPTOUTS": "Opt Out",
    "SUPPRESSED": "Suppressed",
}
_RRDE_FORMATS = {"0": ",", "1": "|", "2": "\t"}  # [I] 0 CSV (the doc's), 1 pipe, 2 tab
_RRDE_STAMP_BASE = datetime(2024, 1, 8, 10, 0, 0)
_XML_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2}):(\d{2}))?$")
_JOB_DESCRIPTION = "Export raw recipient data."


@dataclass
class _Job:
    job_id: str
    file_path: str
    start: datetime  # naive local
    end: datetime  # naive local, inclusive
    words: tuple[str, ...]  # RRDE event words; empty = all
    columns: tuple[str, ...]
    delimiter: str
    polls: int = 0
    status: str = "WAITING"


class _XmlFaultError(Exception):
    def __init__(self, message: str, error_id: int = 145) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id


class XmlApiPart(AcousticState, JobBoardCounters):
    """Raw Recipient Data Export jobs: submitted, polled, written (or not) to the site."""

    def _init_xml_api(
        self, *, polls_until_complete: int, org_timezone: str, jobs: JobBoard
    ) -> None:
        self.polls_until_complete = max(1, polls_until_complete)
        self.org_timezone = org_timezone
        self.jobs = jobs
        self.rrde_submissions = 0
        self.status_polls = 0
        self.rrde_files: list[Path] = []
        # Benchmarks: a job asking for what an earlier job asked for gets a hard link to that
        # job's ZIP (whose CSV member keeps the first job's name), so the generator is not timed.
        self.reuse_rrde_exports = False
        self._rrde_built: dict[tuple[Any, ...], Path] = {}
        self._jobs: dict[str, _Job] = {}
        self._next_job_id = FIRST_JOB_ID

    def _xml(self, request: Request) -> tuple[Response, str, str]:
        if request.method != "POST":
            return Response("Method Not Allowed", status=405), "xml", ""
        if not self._authorized(request):
            return (
                Response("401 Unauthorized: access token expired or invalid", status=401),
                "xml",
                "",
            )
        operation = ""
        try:
            envelope = _parse_envelope(request)
            body = envelope.find("Body")
            call = body[0] if body is not None and len(body) else None
            if call is None:
                raise _XmlFaultError("Invalid request: the Envelope has no Body operation", 51)
            operation = call.tag
            with self._lock:
                if operation == "RawRecipientDataExport":
                    return _xml_ok(self._rrde_submit(call)), "xml", operation
                if operation == "GetJobStatus":
                    return _xml_ok(self._job_status(call)), "xml", operation
            raise _XmlFaultError(f"Unknown API operation: {operation}", 51)
        except _XmlFaultError as exc:
            return _xml_fault(exc), "xml", operation

    def _rrde_submit(self, call: ET.Element) -> str:
        start = _xml_datetime(_text(call, "EVENT_DATE_START"), "EVENT_DATE_START", end=False)
        end = _xml_datetime(_text(call, "EVENT_DATE_END"), "EVENT_DATE_END", end=True)
        if end < start:
            raise _XmlFaultError("EVENT_DATE_END is before EVENT_DATE_START", 312)
        if call.find("MOVE_TO_FTP") is None:
            raise _XmlFaultError("The sandbox only runs exports with MOVE_TO_FTP", 314)
        export_format = _text(call, "EXPORT_FORMAT") or "0"
        delimiter = _RRDE_FORMATS.get(export_format)
        if delimiter is None:
            raise _XmlFaultError(f"Invalid EXPORT_FORMAT {export_format}", 314)
        words: tuple[str, ...] = ()
        if call.find("ALL_EVENT_TYPES") is None:
            words = tuple(w for el, w in RRDE_ELEMENTS.items() if call.find(el) is not None)
        columns = tuple(
            "".join(name.itertext()).strip() for name in call.findall("COLUMNS/COLUMN/NAME")
        )
        job_id = str(self._next_job_id)
        try:
            self.jobs.submit(job_id, f"{start.isoformat()}..{end.isoformat()}")
        except JobLimitError as exc:
            raise _XmlFaultError(
                f"Unable to create the export job: {exc.limit} export jobs are already waiting "
                "or running; submit again when one completes",
                156,
            ) from None
        n = self._next_job_id - FIRST_JOB_ID
        self._next_job_id += 1
        stamp = _RRDE_STAMP_BASE + timedelta(minutes=n)
        file_path = f"Raw Recipient Data Export {stamp:%b %d %Y %I-%M-%S %p} {job_id}.zip"
        self._jobs[job_id] = _Job(job_id, file_path, start, end, words, columns, delimiter)
        self.rrde_submissions += 1
        announced = self.faults.for_rrde(start).rrde_announce_path
        return (
            "<SUCCESS>TRUE</SUCCESS><MAILING>"
            f"<JOB_ID>{job_id}</JOB_ID>"
            f"<FILE_PATH>{escape(announced or file_path)}</FILE_PATH>"
            "</MAILING>"
        )

    def _job_status(self, call: ET.Element) -> str:
        job_id = _text(call, "JOB_ID")
        job = self._jobs.get(job_id)
        if job is None:
            raise _XmlFaultError(f"Job {job_id or '(empty)'} not found", 145)
        self.status_polls += 1
        job.polls += 1
        description = _JOB_DESCRIPTION
        if job.status not in ("COMPLETE", "ERROR"):
            if self.faults.for_rrde(job.start).rrde_error:
                job.status = "ERROR"
                self.jobs.finish(job_id)
            else:
                stage = self.jobs.stage(
                    job_id, polls=job.polls, polls_until_done=self.polls_until_complete
                )
                if stage == DONE:
                    self._complete(job)
                else:
                    job.status = "WAITING" if stage == QUEUED else "RUNNING"
        if job.status == "ERROR":
            description += " Error: the export could not be generated (sandbox fault rrde_error)."
        return (
            f"<SUCCESS>TRUE</SUCCESS><JOB_ID>{job_id}</JOB_ID><JOB_STATUS>{job.status}"
            f"</JOB_STATUS><JOB_DESCRIPTION>{escape(description)}</JOB_DESCRIPTION>"
            "<PARAMETERS><PARAMETER><NAME>FILE_PATH</NAME>"
            f"<VALUE>{escape(job.file_path)}</VALUE></PARAMETER></PARAMETERS>"
        )

    def _complete(self, job: _Job) -> None:
        """Write the job's ZIP (and delete it again when a result fault says it expired)."""
        self._write_rrde(job)
        job.status = "COMPLETE"
        self.jobs.finish(job.job_id)
        faults = self.faults
        expire = faults.for_rrde(job.start).rrde_delete_result
        if not expire and faults.rrde_expire_results > 0:
            faults.rrde_expire_results -= 1
            expire = True
        if expire:
            (self.download_dir / job.file_path).unlink()
            self.jobs.expire(job.job_id)

    def _write_rrde(self, job: _Job) -> None:
        final = self.download_dir / job.file_path
        partial = self.download_dir / f".{job.file_path}.part"
        request = (job.start, job.end, job.words, job.columns, job.delimiter)
        bomb = self.faults.for_rrde(job.start).rrde_zip_bomb_bytes
        reuse = self.reuse_rrde_exports and not bomb
        built = self._rrde_built.get(request) if reuse else None
        if built is not None:
            os.link(built, partial)
            partial.replace(final)
            self.rrde_files.append(final)
            return
        self.dataset.write_rrde_zip(
            partial,
            job.start,
            job.end,
            tz=self.org_timezone,
            event_types=job.words or None,
            custom_columns=job.columns,
            member_name=job.file_path[: -len(".zip")] + ".csv",
            delimiter=job.delimiter,
        )
        if bomb:
            _append_blank_lines(partial, bomb)
        if reuse:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            built = self.staging_dir / f"rrde-built-{len(self._rrde_built)}.zip"
            os.link(partial, built)
            self._rrde_built[request] = built
        partial.replace(final)
        self.rrde_files.append(final)

    def rrde_job(self, job_id: str) -> dict[str, Any] | None:
        """What a submitted job asked for: ``{"file_path", "start", "end", "event_words",
        "columns", "status", "polls"}`` (local naive datetimes, end inclusive) or None."""
        with self._lock:
            job = self._jobs.get(str(job_id))
            if job is None:
                return None
            return {
                "file_path": job.file_path,
                "start": job.start,
                "end": job.end,
                "event_words": job.words,
                "columns": job.columns,
                "status": job.status,
                "polls": job.polls,
            }


def _append_blank_lines(path: Path, size: int) -> None:
    """Rewrite a one-member ZIP with ``size`` bytes of blank lines after its content."""
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
        data = archive.read(info)
    blank = b"\r\n" * (1 << 19)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(info.filename, "w", force_zip64=True) as out,
    ):
        out.write(data)
        for _ in range(0, size, len(blank)):
            out.write(blank)


def _parse_envelope(request: Request) -> ET.Element:
    document = request.form.get("xml")
    if document is None:
        raw = request.get_data(cache=True)
        if len(raw) > MAX_BODY_BYTES:
            raise _XmlFaultError("Invalid request: the document is too large", 51)
        document = raw.decode("utf-8", errors="replace")
    if len(document) > MAX_BODY_BYTES:
        raise _XmlFaultError("Invalid request: the document is too large", 51)
    if "<!DOCTYPE" in document or "<!ENTITY" in document:
        raise _XmlFaultError("Invalid request: DTDs and entities are not allowed", 51)
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise _XmlFaultError(f"Invalid XML: {exc}", 51) from None
    if root.tag != "Envelope":
        raise _XmlFaultError("Invalid request: the root element must be Envelope", 51)
    return root


def _text(parent: ET.Element, path: str) -> str:
    element = parent.find(path)
    return "" if element is None else "".join(element.itertext()).strip()


def _xml_datetime(raw: str, what: str, *, end: bool) -> datetime:
    match = _XML_DATE.match(raw)
    if match is None:
        raise _XmlFaultError(f"{what} {raw!r} is invalid: MM/DD/YYYY HH:MM:SS expected", 312)
    month, day, year = (int(g) for g in match.groups()[:3])
    try:
        if match.group(4) is None:
            moment = datetime.combine(date(year, month, day), datetime.min.time())
            return moment + timedelta(days=1, seconds=-1) if end else moment
        hour, minute, second = (int(g) for g in match.groups()[3:])
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise _XmlFaultError(f"{what} {raw!r} is not a valid date", 312) from None


def _xml_ok(result_body: str) -> Response:
    return Response(
        f"<Envelope><Body><RESULT>{result_body}</RESULT></Body></Envelope>",
        status=200,
        content_type="text/xml; charset=utf-8",
    )


def _xml_fault(fault: _XmlFaultError) -> Response:
    return Response(
        "<Envelope><Body><RESULT><SUCCESS>false</SUCCESS></RESULT><Fault><Request/>"
        f"<FaultCode/><FaultString>{escape(fault.message)}</FaultString><detail><error>"
        f"<errorid>{fault.error_id}</errorid><module/><class>SP.API</class><method/>"
        "</error></detail></Fault></Body></Envelope>",
        status=200,
        content_type="text/xml; charset=utf-8",
    )
