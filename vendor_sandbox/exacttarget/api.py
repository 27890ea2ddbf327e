"""The legacy ExactTarget XML API (``integrate.aspx``) as a WSGI app.

Speaks the two calls the tap uses, exactly as ``docs/exacttarget.md`` describes them:

* ``tracking`` / ``BulkAsync`` / ``all_jobs_ToFTP`` with ``<daterange>`` (activity, inclusive
  whole days, at most ``max_days``) and optional ``<jobdaterange>`` (sends; defaults to the
  activity range) -> ``<info>Your request has been recorded</info><batchID>N</batchID>``.
* ``batch`` / ``inquire`` / ``batchid`` -> ``<Batch><batchid/><status/><filename/></Batch>``.
  Inquiry 1 of a batch answers ``Scheduled``, inquiries 2..N-1 ``Processing``, inquiry N
  (``inquiries_until_complete``) ``Complete``; at that moment the result ZIP is written into
  ``files_root / results_folder`` (where the sandbox's FTP/SFTP servers serve it) and every later
  inquiry answers ``Complete`` with the same file name.  Batches live in this object, so a tap
  process that crashes and restarts can resume polling the same batch id.  With durations in
  ``jobs`` (:class:`~vendor_sandbox.jobs.JobSettings`) a batch is ``Scheduled``, ``Processing``
  and ``Complete`` by the api's clock instead, measured from its submission.

Requests are form-encoded ``qf=xml&xml=<document>`` (POST, or GET for completeness) to any path
ending in ``integrate.aspx``.  Errors are in-band (HTTP 200) under the element named after the
called system: ``<tracking><error>3</error><error_description>..</error_description></tracking>``
with the sandbox's codes: 2 bad login, 3 range too long, 4 bad date, 5 unknown batch,
6 unsupported request, 7 too many batches in progress (a submission while ``jobs.limit``
batches are scheduled or processing; [I] the docs name no such limit or code, so the sandbox
answers it in the same in-band shape).  Faults (:class:`ExactTargetFaults`) make it misbehave
on request.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from vendor_sandbox.exacttarget.data import ExactTargetDataset
from vendor_sandbox.jobs import (
    DONE,
    QUEUED,
    JobBoard,
    JobBoardCounters,
    JobLimitError,
    JobSettings,
)
from vendor_sandbox.servers.http import echo_page, redirect_answer
from vendor_sandbox.servers.ratelimit import RateLimit, metered

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["FIRST_BATCH_ID", "ExactTargetApi", "ExactTargetFaults"]

FIRST_BATCH_ID = 979804
MAX_REQUEST_CHARS = 1_000_000
_FILE_STAMP_BASE = datetime(2024, 2, 1, 9, 0, 0)
_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_XML_HEAD = "<?xml version='1.0'?>\n"


@dataclass
class ExactTargetFaults:
    """Misbehaviour on request; flip fields on ``api.faults`` at any time."""

    batch_error: bool = False  # inquire answers status Error
    never_completes: bool = False  # inquire answers Processing forever
    unknown_status: bool = False  # inquire answers "Pending Review"
    truncate_zip: bool = False  # the ZIP written to the file site is cut in half
    malformed_xml: bool = False  # the XML member is malformed (valid ZIP)
    # A ZIP bomb: this many bytes of empty <pad/> elements (valid XML, ~1000:1 deflated) go into
    # the XML member before </accounts>.
    zip_bomb_bytes: int | None = None
    # The first <subscriber> gets a <Huge> attribute whose text is this many bytes long.
    huge_text_bytes: int | None = None
    # The XML member is compressed another way: "bzip2" or "lzma" (with `zip_bomb_bytes` of
    # spaces before </accounts>, and both headers stating an expanded size of 50 bytes),
    # "deflate64" (method 9 in the headers) or "encrypted" (flag bit 0 set).
    member_method: str | None = None
    # This many nested <a> go before </accounts>, never closed; the member is stored.
    nesting_depth: int | None = None
    echo_password_error: bool = False  # every call: in-band error quoting the password
    announce_name: str | None = None  # a complete batch announces this file name instead
    delete_result: bool = False  # a complete batch's file is gone from the file site (expired)
    # The next N batches to complete have their ZIP removed from the file site at once, as if it
    # expired (their inquiries still answer Complete with its name); later batches keep theirs.
    expire_results: int = 0
    # Next responses use these statuses (FIFO): 500 -> plain 500 page; 503; 429 -> with
    # Retry-After: 0.
    http_errors: list[int] = field(default_factory=list)
    # Every call: (status, Location) redirect, "{path}" being the request's path; a request
    # that already is at the Location is served.
    redirect: tuple[int, str] | None = None
    # Every call: HTTP 200 HTML page of a blocking proxy, echoing the request body.
    html_page: bool = False
    # Every call counts against this budget: its headers on every answer, 429 beyond it.
    rate_limit: RateLimit | None = None
    # The batch faults above (status, file shape, announced name, deletion; not the calls' faults
    # nor `expire_results`) hit only batches of these activity windows; None: every batch.
    only_windows: set[tuple[date, date]] | None = None

    def for_batch(self, activity: tuple[date, date]) -> ExactTargetFaults:
        """The faults a batch of this activity window meets (none outside `only_windows`)."""
        if self.only_windows is None or activity in self.only_windows:
            return self
        return ExactTargetFaults()


@dataclass
class _Batch:
    batch_id: str
    activity: tuple[date, date]
    sends: tuple[date, date]
    inquiries: int = 0
    filename: str | None = None


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class ExactTargetApi(JobBoardCounters):
    """WSGI app of the ExactTarget XML API backed by an :class:`ExactTargetDataset`.

    Counters: ``submissions`` (accepted BulkAsync calls), ``inquiries`` (answered inquiries of
    known batches), ``requests`` (every authenticated call, in order, as
    ``{"system", "action", "daterange", "jobdaterange", "batch_id"}`` with ranges as
    ``(date, date)`` or None), ``files`` (paths of the ZIPs written).  The job board ``jobs``
    (its settings: durations and limit) gives ``submission_log`` (time, batch id, activity range
    as ``YYYY-MM-DD..YYYY-MM-DD``, when it finished), ``max_in_flight``, ``jobs_in_flight`` and
    ``rejected_submissions`` (refused by the limit).
    """

    def __init__(
        self,
        dataset: ExactTargetDataset,
        files_root: Path,
        *,
        username: str,
        password: str,
        results_folder: str = "/",
        inquiries_until_complete: int = 2,
        max_days: int = 7,
        jobs: JobSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dataset = dataset
        self.files_root = Path(files_root)
        self.username = username
        self.password = password
        self.results_folder = results_folder
        self.inquiries_until_complete = max(inquiries_until_complete, 1)
        self.max_days = max_days
        self.faults = ExactTargetFaults()
        self.jobs = JobBoard(clock, jobs)
        self.submissions = 0
        self.inquiries = 0
        self.requests: list[dict[str, Any]] = []
        self.files: list[Path] = []
        self._batches: dict[str, _Batch] = {}
        self._next_batch_id = FIRST_BATCH_ID
        self._lock = threading.RLock()
        self._prebuilt: dict[tuple[tuple[date, date], tuple[date, date]], Path] = {}

    def prebuild(self, activity: tuple[date, date], sends: tuple[date, date]) -> Path:
        """Write a window's export ahead of time, so its batch completes without generating.

        Benchmarks use this to time the tap rather than the sandbox's generator; a batch with a
        file-shaping fault switched on is always generated afresh.
        """
        folder = self.files_root.parent / "prebuilt"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{activity[0]:%Y%m%d}-{activity[1]:%Y%m%d}-{sends[0]:%Y%m%d}.zip"
        self.dataset.write_export(path, activity=activity, sends=sends, member_name="tracking.xml")
        self._prebuilt[(activity, sends)] = path
        return path

    @property
    def results_dir(self) -> Path:
        """Where result ZIPs are written: ``files_root / results_folder``."""
        return self.files_root / self.results_folder.strip("/")

    def filename_for(self, batch_id: str | int) -> str | None:
        """The result file name of a completed batch (None while it is not complete)."""
        with self._lock:
            batch = self._batches.get(str(batch_id))
            return batch.filename if batch else None

    # ----------------------------------------------------------------------------------- WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if not request.path.lower().endswith("integrate.aspx"):
            return Response("Not Found", status=404, content_type="text/plain")
        if request.method not in {"GET", "POST"}:
            return Response("Method Not Allowed", status=405, content_type="text/plain")
        return metered(self.faults.rate_limit, "xml", lambda: self._serve(request))

    def _serve(self, request: Request) -> Response:
        if self.faults.redirect is not None:
            moved = redirect_answer(request, *self.faults.redirect)
            if moved is not None:
                return moved
        if self.faults.html_page:
            return echo_page(request)
        with self._lock:
            http_error = self.faults.http_errors.pop(0) if self.faults.http_errors else None
        if http_error is not None:
            return _http_error(http_error)
        try:
            root = _parse(request)
        except _ApiError as exc:
            return _error("system", exc)
        system = root.find("system")
        name = _text(system, "system_name").lower()
        system_tag = name if _NAME_RE.match(name) else "system"
        try:
            return self._call(root, system, system_tag)
        except _ApiError as exc:
            return _error(system_tag, exc)

    # ------------------------------------------------------------------------------ the calls
    def _call(self, root: ET.Element, system: ET.Element | None, system_tag: str) -> Response:
        username = _text(root, "authorization/username")
        password = _text(root, "authorization/password")
        if self.faults.echo_password_error:
            raise _ApiError(
                1,
                f"Unexpected error processing the request of user {username} "
                f"with password {password}",
            )
        if username != self.username.strip() or password != self.password.strip():
            raise _ApiError(2, "Invalid username or password")
        if system is None:
            raise _ApiError(6, "Unsupported request: missing <system>")
        name = _text(system, "system_name").lower()
        action = _text(system, "action")
        record: dict[str, Any] = {
            "system": name,
            "action": action,
            "daterange": None,
            "jobdaterange": None,
            "batch_id": None,
        }
        with self._lock:
            self.requests.append(record)
            if (
                name == "tracking"
                and action.lower() in {"bulkasync", "bulkasyncenterprise"}
                and _text(system, "sub_action").lower() == "all_jobs_toftp"
            ):
                return self._submit(system, record)
            if (
                name == "batch"
                and action.lower() == "inquire"
                and _text(system, "search_type").lower() == "batchid"
            ):
                return self._inquire(system, record)
        raise _ApiError(6, f"Unsupported request: {system_tag}/{action}")

    def _submit(self, system: ET.Element, record: dict[str, Any]) -> Response:
        activity = _range(system.find("daterange"), "daterange")
        if activity is None:
            raise _ApiError(4, "Invalid date: <daterange> with <startdate> and <enddate> needed")
        record["daterange"] = activity
        days = (activity[1] - activity[0]).days + 1
        if days > self.max_days:
            raise _ApiError(3, f"Date range exceeds {self.max_days} days ({days} days requested)")
        sends = _range(system.find("jobdaterange"), "jobdaterange") or activity
        record["jobdaterange"] = sends
        batch_id = str(self._next_batch_id)
        try:
            self.jobs.submit(batch_id, f"{activity[0].isoformat()}..{activity[1].isoformat()}")
        except JobLimitError as exc:
            raise _ApiError(
                7,
                f"Too many batch requests in progress: {exc.limit} batches are scheduled or "
                "processing; submit again when one completes",
            ) from None
        self._next_batch_id += 1
        self._batches[batch_id] = _Batch(batch_id, activity, sends)
        self.submissions += 1
        record["batch_id"] = batch_id
        return _xml(
            "<tracking><info>Your request has been recorded</info>"
            f"<batchID>{batch_id}</batchID></tracking>"
        )

    def _inquire(self, system: ET.Element, record: dict[str, Any]) -> Response:
        batch_id = _text(system, "search_value")
        record["batch_id"] = batch_id
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _ApiError(5, f"Batch not found: {batch_id}")
        self.inquiries += 1
        batch.inquiries += 1
        faults = self.faults.for_batch(batch.activity)
        if batch.filename is not None:
            status = "Complete"
        elif faults.batch_error:
            status = "Error"
            self.jobs.finish(batch_id)
        elif faults.never_completes:
            status = "Processing"
        elif faults.unknown_status:
            status = "Pending Review"
        else:
            stage = self.jobs.stage(
                batch_id, polls=batch.inquiries, polls_until_done=self.inquiries_until_complete
            )
            if stage == DONE:
                self._complete(batch)
                status = "Complete"
            else:
                status = "Scheduled" if stage == QUEUED else "Processing"
        announced = batch.filename and (faults.announce_name or batch.filename)
        if batch.filename and faults.delete_result:
            (self.results_dir / batch.filename).unlink(missing_ok=True)
        filename = f"<filename>{escape(announced)}</filename>" if announced else "<filename />"
        return _xml(
            f"<Batch><batchid>{batch_id}</batchid><status>{status}</status>{filename}</Batch>"
        )

    def _complete(self, batch: _Batch) -> None:
        """Write the batch's ZIP (and remove it again when ``expire_results`` says so)."""
        batch.filename = self._write_result(batch)
        self.jobs.finish(batch.batch_id)
        if self.faults.expire_results > 0:
            self.faults.expire_results -= 1
            (self.results_dir / batch.filename).unlink()
            self.jobs.expire(batch.batch_id)

    def _write_result(self, batch: _Batch) -> str:
        n = len(self.files)
        stamp_dt = _FILE_STAMP_BASE + timedelta(milliseconds=1001 * n)
        stamp = stamp_dt.strftime("%Y%m%d%H%M%S") + f"{stamp_dt.microsecond // 1000:03d}"
        member = self.dataset.spec.members[0]
        name = f"bulkasync_{member}_{stamp}_1.zip"
        folder = self.results_dir
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / name
        partial = folder / f".{name}.part"
        prebuilt = self._prebuilt.get((batch.activity, batch.sends))
        faults = self.faults.for_batch(batch.activity)
        shaped = (
            faults.malformed_xml
            or faults.truncate_zip
            or faults.zip_bomb_bytes
            or faults.huge_text_bytes
            or faults.member_method
            or faults.nesting_depth
        )
        if prebuilt is not None and not shaped:
            os.link(prebuilt, final)
            self.files.append(final)
            return name
        self.dataset.write_export(
            partial,
            activity=batch.activity,
            sends=batch.sends,
            member_name=name[: -len(".zip")] + ".xml",
            corrupt_xml=faults.malformed_xml,
        )
        if faults.member_method:
            _rewrite_method(partial, faults.member_method, faults.zip_bomb_bytes or 0)
        elif faults.zip_bomb_bytes:
            _insert_into_member(partial, b"</accounts>", _padding(faults.zip_bomb_bytes), 0)
        if faults.nesting_depth:
            nested = [b"<a>" * faults.nesting_depth]
            _insert_into_member(partial, b"</accounts>", nested, 0, zipfile.ZIP_STORED)
        if faults.huge_text_bytes:
            huge = [b"<Huge>", b"x" * faults.huge_text_bytes, b"</Huge>"]
            _insert_into_member(partial, b"<subscriber>", huge, len(b"<subscriber>"))
        if faults.truncate_zip:
            os.truncate(partial, partial.stat().st_size // 2)
        partial.replace(final)
        self.files.append(final)
        return name


def _padding(size: int) -> Iterator[bytes]:
    """`size` bytes (rounded up to whole elements) of `<pad/>`, in 1 MB pieces."""
    piece = b"<pad/>" * ((1 << 20) // 6)
    for _ in range(0, size, len(piece)):
        yield piece


def _rewrite_method(path: Path, method: str, padding: int) -> None:
    """Give the ZIP's one member another compression method or the encryption flag."""
    if method in ("bzip2", "lzma"):
        spaces = (b" " * (1 << 20) for _ in range(0, padding, 1 << 20))
        compression = zipfile.ZIP_BZIP2 if method == "bzip2" else zipfile.ZIP_LZMA
        _insert_into_member(path, b"</accounts>", spaces, 0, compression, zip64=False)
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    for at, flags, kind, size in ((local, 6, 8, 22), (central, 8, 10, 24)):
        if method in ("bzip2", "lzma"):
            struct.pack_into("<I", data, at + size, 50)
        elif method == "deflate64":
            struct.pack_into("<H", data, at + kind, 9)
        elif method == "encrypted":
            (old,) = struct.unpack_from("<H", data, at + flags)
            struct.pack_into("<H", data, at + flags, old | 1)
        else:
            raise ValueError(f"unknown member_method {method!r}")
    path.write_bytes(bytes(data))


def _insert_into_member(
    path: Path,
    marker: bytes,
    pieces: Iterable[bytes],
    after: int,
    compression: int = zipfile.ZIP_DEFLATED,
    *,
    zip64: bool = True,
) -> None:
    """Rewrite the ZIP's one member with `pieces` inserted at the first `marker` (+ `after`)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
        data = archive.read(info)
    at = data.index(marker) + after
    with (
        zipfile.ZipFile(path, "w", compression=compression) as archive,
        archive.open(info.filename, "w", force_zip64=zip64) as out,
    ):
        out.write(data[:at])
        for piece in pieces:
            out.write(piece)
        out.write(data[at:])


def _parse(request: Request) -> ET.Element:
    if (request.values.get("qf") or "").strip().lower() != "xml":
        raise _ApiError(6, "Unsupported request: the qf parameter must be xml")
    document = request.values.get("xml") or ""
    if not document.strip():
        raise _ApiError(6, "Unsupported request: the xml parameter is empty")
    if len(document) > MAX_REQUEST_CHARS:
        raise _ApiError(6, "Unsupported request: the xml document is too large")
    if "<!DOCTYPE" in document or "<!ENTITY" in document:
        raise _ApiError(6, "Unsupported request: DTDs and entity declarations are not allowed")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise _ApiError(
            6, f"Unsupported request: the xml document is not well-formed ({exc})"
        ) from None
    if root.tag != "exacttarget":
        raise _ApiError(6, "Unsupported request: the root element must be <exacttarget>")
    return root


def _text(parent: ET.Element | None, path: str) -> str:
    if parent is None:
        return ""
    element = parent.find(path)
    if element is None:
        return ""
    return "".join(element.itertext()).strip()


def _range(element: ET.Element | None, what: str) -> tuple[date, date] | None:
    """``(start, end)`` of a ``<daterange>``-shaped element; None if absent or empty."""
    if element is None:
        return None
    start_raw, end_raw = _text(element, "startdate"), _text(element, "enddate")
    if not start_raw and not end_raw and len(element) == 0:
        return None
    start, end = _date(start_raw, what), _date(end_raw, what)
    if end < start:
        raise _ApiError(4, f"Invalid date: {what} ends before it starts")
    return start, end


def _date(raw: str, what: str) -> date:
    match = _DATE_RE.match(raw)
    if match is None:
        raise _ApiError(4, f"Invalid date in {what}: {raw!r} (expected M/D/YYYY)")
    month, day, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise _ApiError(4, f"Invalid date in {what}: {raw!r}") from None


def _error(system_tag: str, exc: _ApiError) -> Response:
    return _xml(
        f"<{system_tag}><error>{exc.code}</error>"
        f"<error_description>{escape(exc.description)}</error_description></{system_tag}>"
    )


def _xml(system_body: str) -> Response:
    return Response(
        f"{_XML_HEAD}<exacttarget><system>{system_body}</system></exacttarget>\n",
        status=200,
        content_type="text/xml; charset=utf-8",
    )


def _http_error(status: int) -> Response:
    if status == 429:
        return Response(
            "Too Many Requests", status=429, content_type="text/plain", headers={"Retry-After": "0"}
        )
    if status == 500:
        page = (
            "<html><head><title>Runtime Error</title></head><body>"
            "<h1>Server Error in '/' Application.</h1></body></html>"
        )
        return Response(page, status=500, content_type="text/html")
    if status == 503:
        return Response("Service Unavailable", status=503, content_type="text/plain")
    return Response(f"HTTP {status}", status=status, content_type="text/plain")
