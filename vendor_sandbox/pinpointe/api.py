"""Pinpointe's JSON API (``<prefix>/apijson.php``) and its result links, as a WSGI app.

The protocol as served (``docs/pinpointe.md``; [I] marks the sandbox's choices where the docs
are silent):

* Every call is a ``POST`` of one JSON object ``{"username", "usertoken", "requesttype",
  "requestmethod", "details"}``; ``requesttype`` and ``requestmethod`` match case-insensitively
  [I, the WordPress plugin sends lowercase]. Success: ``{"status": "SUCCESS", "data": ...}``
  (HTTP 200). Failure: ``{"status": "FAILED", "errormessage": "..."}`` on HTTP 400
  (PINPOINTE-1747); a wrong username or token: HTTP 401 ``Unable to verify user credentials``
  (PINPOINTE-1745). A body that is not a JSON object, a GET, an unknown method: 400 [I].
* Pagination ``details.pagination = {"limit", "next"}`` (strings or numbers): ``limit`` a
  positive whole number, ``next`` (default 0) where to start. An empty ``pagination`` object or
  ``next`` without ``limit`` is an error (the docs: limit "required if next used"; unused
  elements must be deleted). Without ``pagination`` every record comes at once and the answer
  has no pagination section [I]. The answer's ``pagination`` is ``{"next": "<n>"}`` with ``"0"``
  on the last page, at the top level or inside ``data`` (see ``PinpointeShapes``).
* ``Lists/GetLists``, ``Segments/GetSegments``, ``Tags/GetTags`` (``includeshared`` tolerated),
  ``Newsletters/GetNewslettersSent`` (``intervalcount`` whole number > 0 and ``intervalunits``
  minutes|hours|days|weeks|years, default days: sends started since now minus that, by the
  wall clock; without ``intervalcount`` every send [I]).
* Async calls, each ``notify`` required (``{"type": "email"|"webhook", "value": "..."}``):
  ``Lists/GetListSubscribersAsync`` (``list`` non-empty array of known ids; ``startdate`` /
  ``enddate`` ``YYYYMMDD``, when subscribers were added to the list, enddate exclusive),
  ``Segments/GetSegmentSubscribersAsync`` (``segmentid`` array; ``format`` json|csv),
  ``Tags/GetTagSubscribersAsync`` (``tag`` array), all three with ``status``
  any|active|inactive|bounced|unsubscribed, ``include_membership`` and ``customfields``
  (``"all"`` or names); ``Newsletters/GetNewsletterContactDataSummaryAsync`` (``stat`` a known
  statid; ``startdate``/``enddate`` filter event times). Unknown members and empty optional
  ones are tolerated and ignored. An unknown id is an error ``... not found`` [I]. The answer's
  ``data`` holds the job id plus ``timeelapsed`` and ``timestamp`` (the docs' "Jobid, time
  elapsed, and timestamp"). Identical requests get new job ids (no dedup [I]).
* ``API/AsyncJobStatus``: ``jobids`` (absent or empty: every job) and pagination; records
  ``{<id key>, "status", "requesttype", "requestmethod"}`` in the order asked, unknown ids
  left out; none known: FAILED ``Jobs not found`` (HTTP 400 [I]). A job answers ``waiting``
  at its first report, ``processing`` later and the done word at report N
  (``polls_until_complete``; by the clock with ``JobSettings`` durations). Reports count per
  job, on the page that shows it. A done record carries an absolute link [I] to
  ``<prefix>/results/<file>``, written (streaming) when the job completes; a failed one
  ``"status": "failed", "message": "..."``. A submission while ``jobs.limit`` jobs are in
  flight answers FAILED ``Too many asynchronous jobs in progress`` [I].
* Result links need no credentials [I] and honour ``Range`` (``servers.http_files``).

Every call is logged in ``requests`` (HTTP method, requesttype, requestmethod, username,
details with anything named like a token or password masked, HTTP status, answer status); the
usertoken never is.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from vendor_sandbox.jobs import DONE, QUEUED, JobBoard, JobBoardCounters, JobLimitError, JobSettings
from vendor_sandbox.pinpointe.data import PinpointeDataset, epoch
from vendor_sandbox.pinpointe.faults import PinpointeFaults, PinpointeShapes
from vendor_sandbox.pinpointe.files import nested_activity, write_csv, write_json
from vendor_sandbox.servers.faults import DownloadFaults
from vendor_sandbox.servers.http_files import HttpFiles

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["AUTH_ERROR", "JOBS_NOT_FOUND", "JOB_LIMIT_ERROR", "PinpointeApi"]

AUTH_ERROR = "Unable to verify user credentials"
JOBS_NOT_FOUND = "Jobs not found"
JOB_LIMIT_ERROR = "Too many asynchronous jobs in progress"
MAX_BODY_BYTES = 1_000_000
UTC = timezone.utc
_UNITS_SECONDS = {"minutes": 60, "hours": 3600, "days": 86_400, "weeks": 604_800}
_STATUSES = ("any", "active", "inactive", "bounced", "unsubscribed")
_SECRET_WORDS = ("token", "password", "secret")
_MAINTENANCE = (
    "<!DOCTYPE html><html><head><title>Pinpointe - Scheduled Maintenance</title></head>"
    "<body><h1>We'll be back soon</h1><p>Pinpointe is down for scheduled maintenance.</p>"
    "</body></html>"
)
# Per call: (requesttype, pagination placement, records key in data or None for a bare list).
_LISTINGS = {
    "getlists": ("Lists", "top", None),
    "getsegments": ("Segments", "data", "item"),
    "gettags": ("Tags", "top", "items"),
    "getnewsletterssent": ("Newsletters", "data", "newsletters"),
}
# Per async kind: (requesttype, requestmethod, id detail, job id key, link key, JSON holder).
_ASYNC = {
    "list": ("Lists", "GetListSubscribersAsync", "list", "jobid", "url", "object"),
    "segment": ("Segments", "GetSegmentSubscribersAsync", "segmentid", "job_id", "downloadurl",
                "array"),
    "tag": ("Tags", "GetTagSubscribersAsync", "tag", "jobId", "result.url", "lines"),
    "send": ("Newsletters", "GetNewsletterContactDataSummaryAsync", "stat", "jobid", "url",
             "array"),
}  # fmt: skip
_ASYNC_BY_METHOD = {spec[1].lower(): kind for kind, spec in _ASYNC.items()}


class _ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class _Job:
    job_id: str
    kind: str
    unit: str
    ids: list[str]
    options: dict[str, Any]
    submitted: float
    fate: str | None = None  # "fail" or "stall", decided at submission
    reports: int = 0
    status: str = "waiting"
    file: str | None = None
    message: str | None = None
    forgotten: bool = False
    records: int | None = None  # whole records in the result file


class PinpointeApi(JobBoardCounters):
    """WSGI app of Pinpointe's JSON API and result links, backed by a :class:`PinpointeDataset`.

    Switches: ``shapes`` (:class:`PinpointeShapes`), ``faults`` (:class:`PinpointeFaults`),
    ``download_faults`` (:class:`DownloadFaults` of the result links). Counters: ``requests``
    (the call log), ``jobs`` (the board: ``submission_log``, ``max_in_flight``, ...),
    ``files`` (paths of the result files written). ``job(job_id)`` tells what a job asked for.
    """

    def __init__(
        self,
        dataset: PinpointeDataset,
        results_dir: Path,
        *,
        username: str,
        usertoken: str,
        prefix: str = "/pinpointe",
        polls_until_complete: int = 3,
        jobs: JobSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.dataset = dataset
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.usertoken = usertoken
        self.prefix = "/" + prefix.strip("/")
        self.polls_until_complete = max(1, polls_until_complete)
        self.clock = clock
        self.wall_clock = wall_clock
        self.shapes = PinpointeShapes()
        self.faults = PinpointeFaults()
        self.download_faults = DownloadFaults()
        self.file_site = HttpFiles(
            self.results_dir, self.prefix + "/results", faults=self.download_faults
        )
        self.jobs = JobBoard(clock, jobs)
        self.requests: list[dict[str, Any]] = []
        self.files: list[Path] = []
        # Benchmarks: a job asking exactly what an earlier one asked gets a hard link to its file
        # (writing a million-row file takes seconds and would be timed as the tap's).
        self.reuse_results = False
        self._written: dict[str, tuple[Path, int]] = {}
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.RLock()

    @property
    def endpoint_path(self) -> str:
        return self.prefix + "/apijson.php"

    def calls(self, requestmethod: str) -> list[dict[str, Any]]:
        """Logged calls of one method (case-insensitive), oldest first."""
        wanted = requestmethod.lower()
        return [r for r in self.requests if str(r["requestmethod"]).lower() == wanted]

    def status_jobids(self) -> list[list[str] | None]:
        """The ``jobids`` each AsyncJobStatus call asked for (None: all jobs), in order."""
        out: list[list[str] | None] = []
        for call in self.calls("AsyncJobStatus"):
            details = call["details"] if isinstance(call["details"], dict) else {}
            jobids = details.get("jobids")
            out.append([str(j) for j in jobids] if isinstance(jobids, list) and jobids else None)
        return out

    def job(self, job_id: str) -> dict[str, Any] | None:
        """What a job asked for and where it stands: ``{"kind", "unit", "ids", "options",
        "status", "reports", "file", "records", "forgotten"}``, or None."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return {
                "kind": job.kind,
                "unit": job.unit,
                "ids": list(job.ids),
                "options": dict(job.options),
                "status": job.status,
                "reports": job.reports,
                "file": job.file,
                "records": job.records,
                "forgotten": job.forgotten,
            }

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    # ----------------------------------------------------------------------------------- WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.file_site.prefix + "/"):
            return self.file_site(environ, start_response)
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if request.path.lower() != self.endpoint_path.lower():
            return Response("Not Found", status=404, content_type="text/plain")
        entry: dict[str, Any] = {
            "method": request.method,
            "requesttype": None,
            "requestmethod": None,
            "username": None,
            "details": None,
            "http_status": None,
            "status": None,
        }
        with self._lock:
            self.requests.append(entry)
            if self.faults.html_pages > 0:
                self.faults.html_pages -= 1
                entry["http_status"] = self.faults.html_status
                entry["status"] = "html"
                return Response(
                    _MAINTENANCE, status=self.faults.html_status, content_type="text/html"
                )
        try:
            body = self._envelope(request, entry)
            with self._lock:
                data, extra = self._call(request, body)
            answer: dict[str, Any] = {"status": "SUCCESS", "data": data, **extra}
            status = 200
        except _ApiError as exc:
            message: Any = [exc.message] if self.shapes.errormessage_list else exc.message
            answer = {"status": self.shapes.error_status, "errormessage": message}
            status = exc.status
        entry["http_status"] = status
        entry["status"] = answer["status"]
        return Response(json.dumps(answer), status=status, content_type="application/json")

    def _envelope(self, request: Request, entry: dict[str, Any]) -> dict[str, Any]:
        if request.method != "POST":
            raise _ApiError("Only POST requests are accepted")
        raw = request.get_data(cache=False)
        if len(raw) > MAX_BODY_BYTES:
            raise _ApiError("Request too large")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _ApiError("Invalid request: the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _ApiError("Invalid request: expected a JSON object")
        entry["requesttype"] = body.get("requesttype")
        entry["requestmethod"] = body.get("requestmethod")
        entry["username"] = body.get("username")
        entry["details"] = _masked(body.get("details"))
        if (
            self.faults.revoked_token
            or body.get("username") != self.username
            or body.get("usertoken") != self.usertoken
        ):
            raise _ApiError(AUTH_ERROR, 401)
        details = body.get("details", {})
        if details is None:
            details = {}
        if not isinstance(details, dict):
            raise _ApiError("Invalid request: details must be an object")
        body["details"] = details
        return body

    # ------------------------------------------------------------------------------ the calls
    def _call(self, request: Request, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        rtype = str(body.get("requesttype") or "").lower()
        method = str(body.get("requestmethod") or "").lower()
        details: dict[str, Any] = body["details"]
        if method in _LISTINGS and rtype == _LISTINGS[method][0].lower():
            return self._listing(method, details)
        if method in _ASYNC_BY_METHOD and rtype == _ASYNC[_ASYNC_BY_METHOD[method]][0].lower():
            return self._submit(_ASYNC_BY_METHOD[method], details), {}
        if rtype == "api" and method == "asyncjobstatus":
            return self._status(request, details)
        raise _ApiError(
            f"Invalid request: unknown requestmethod {body.get('requestmethod')!r} "
            f"for requesttype {body.get('requesttype')!r}"
        )

    def _listing(self, method: str, details: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        page = _pagination(details)
        dataset = self.dataset
        if method == "getlists":
            records: list[dict[str, str]] = dataset.lists()
        elif method == "getsegments":
            records = dataset.segments()
        elif method == "gettags":
            records = dataset.tags()
        else:
            records = self._sends_since(details)
        _, placement, key = _LISTINGS[method]
        extra = {"count": str(len(records))} if method == "getnewsletterssent" else {}
        return self._paged(records, page, placement, key, extra)

    def _sends_since(self, details: dict[str, Any]) -> list[dict[str, str]]:
        count = _blank_to_none(details.get("intervalcount"))
        units = str(_blank_to_none(details.get("intervalunits")) or "days").lower()
        if units not in (*_UNITS_SECONDS, "years"):
            raise _ApiError(
                f"Invalid intervalunits {units!r}: minutes, hours, days, weeks or years"
            )
        sends = self.dataset.sends()
        if count is None:
            return sends
        n = _whole(count, "intervalcount")
        if n < 1:
            raise _ApiError("Invalid intervalcount: must be at least 1")
        seconds = n * (365 * 86_400 if units == "years" else _UNITS_SECONDS[units])
        since = self.wall_clock() - seconds
        return [s for s in sends if int(s["starttime"]) >= since]

    def _paged(
        self,
        records: list[dict[str, Any]],
        page: tuple[int, int] | None,
        placement: str,
        key: str | None,
        extra: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        """`data` (and top-level members) for one page of `records`."""
        shown, pagination = _page(records, page)
        return self._shaped(shown, pagination, placement, key, extra)

    def _shaped(
        self,
        shown: list[dict[str, Any]],
        pagination: dict[str, str] | None,
        placement: str,
        key: str | None,
        extra: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        placement = self.shapes.pagination or placement
        if key is None and (placement == "top" or pagination is None):
            data: Any = shown
        else:
            data = {**extra, key or "item": shown}
        top: dict[str, Any] = {}
        if pagination is not None:
            if placement == "data":
                data["pagination"] = pagination
            else:
                top["pagination"] = pagination
        return data, top

    # ------------------------------------------------------------------------ async exports
    def _submit(self, kind: str, details: dict[str, Any]) -> Any:
        _notify(details.get("notify"))
        _, _, id_key, default_job_key, _, _ = _ASYNC[kind]
        options: dict[str, Any] = {}
        dataset = self.dataset
        if kind == "send":
            stat = _blank_to_none(details.get("stat"))
            if stat is None or isinstance(stat, (list, dict)):
                raise _ApiError("stat is required: the statid of one newsletter send")
            ids = [str(stat)]
            send_index = dataset.send_index(ids[0])
            if send_index is None:
                raise _ApiError(f"Stat {ids[0]} not found")
            options["send_index"] = send_index
        else:
            raw = details.get(id_key)
            if not isinstance(raw, list) or not raw:
                raise _ApiError(f"{id_key} is required: a non-empty array of ids")
            ids = [str(v) for v in raw]
            known = {"list": dataset.list_ids, "segment": dataset.segment_ids,
                     "tag": dataset.tag_ids}[kind]()  # fmt: skip
            for unit_id in ids:
                if unit_id not in known:
                    raise _ApiError(f"{kind.capitalize()} {unit_id} not found")
            status = str(_blank_to_none(details.get("status")) or "any").lower()
            if status not in _STATUSES:
                raise _ApiError(f"Invalid status {status!r}: {', '.join(_STATUSES)}")
            options["status"] = status
            options["include_membership"] = _boolean(details.get("include_membership"))
            fields = _blank_to_none(details.get("customfields"))
            if fields is not None and fields != "all" and not isinstance(fields, list):
                raise _ApiError('customfields must be "all" or an array of field names')
            options["customfields"] = fields
        if kind == "segment":
            fmt = str(_blank_to_none(details.get("format")) or "json").lower()
            if fmt not in ("json", "csv"):
                raise _ApiError(f"Invalid format {fmt!r}: json or csv")
            options["format"] = fmt
        if kind in ("list", "send"):
            options["startdate"] = _yyyymmdd(details.get("startdate"), "startdate")
            options["enddate"] = _yyyymmdd(details.get("enddate"), "enddate")
            start, end = options["startdate"], options["enddate"]
            if start is not None and end is not None and end <= start:
                raise _ApiError("enddate must be after startdate (enddate is exclusive)")
        unit = f"{kind}:{','.join(ids)}"
        job_id = self._new_job_id()
        try:
            self.jobs.submit(job_id, unit)
        except JobLimitError:
            raise _ApiError(JOB_LIMIT_ERROR) from None
        job = _Job(job_id, kind, unit, ids, options, self.clock())
        faults = self.faults
        if faults.fail_next > 0:
            faults.fail_next -= 1
            job.fate = "fail"
        elif faults.stall_next > 0:
            faults.stall_next -= 1
            job.fate = "stall"
        self._jobs[job_id] = job
        key = self.shapes.job_id_key or default_job_key
        if key == "bare":
            return job_id
        stamp = datetime.fromtimestamp(self.wall_clock(), UTC).strftime("%Y-%m-%d %H:%M:%S")
        return {key: job_id, "timeelapsed": "0.004", "timestamp": stamp}

    def _new_job_id(self) -> str:
        n = len(self._jobs) + 1
        return f"{(n * 2654435761) & 0xFFFFFFFF:08x}"

    def _status(self, request: Request, details: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        page = _pagination(details)
        raw = details.get("jobids")
        if raw is not None and not isinstance(raw, list):
            raise _ApiError("jobids must be an array of job ids")
        asked = list(dict.fromkeys(str(j) for j in raw)) if raw else list(self._jobs)
        for job_id in asked:
            job = self._jobs.get(job_id)
            if job is not None and not job.forgotten and job.reports >= 1:
                left = self.faults.forget_units.get(job.unit, 0)
                if left > 0 and job.status not in (self.shapes.done_word, "failed"):
                    self.faults.forget_units[job.unit] = left - 1
                    job.forgotten = True
        known = [self._jobs[j] for j in asked if j in self._jobs and not self._jobs[j].forgotten]
        if not known:
            raise _ApiError(JOBS_NOT_FOUND)
        shown, pagination = _page(known, page)
        records = [self._report(request, job) for job in shown]
        return self._shaped(records, pagination, "top", "jobs", {})

    def _report(self, request: Request, job: _Job) -> dict[str, Any]:
        """Advance `job` by one status report and return its record."""
        job.reports += 1
        done_word = self.shapes.done_word
        faults = self.faults
        if job.status not in (done_word, "failed") and job.file is None:
            if job.unit in faults.unknown_status_units:
                job.status = faults.unknown_status_word
            elif job.fate == "stall" or job.unit in faults.stall_units:
                job.status = "processing"
            else:
                stage = self.jobs.stage(
                    job.job_id, polls=job.reports, polls_until_done=self.polls_until_complete
                )
                if stage == DONE:
                    if job.fate == "fail" or job.unit in faults.fail_units:
                        job.status = "failed"
                        job.message = f"Export of {job.unit} failed: internal processing error"
                        self.jobs.finish(job.job_id)
                    else:
                        self._complete(job)
                else:
                    job.status = "waiting" if stage == QUEUED else "processing"
        elif job.file is not None:
            job.status = done_word  # the word may have been switched since
        key = self.shapes.job_id_key or "jobid"
        requesttype, requestmethod = _ASYNC[job.kind][:2]
        record: dict[str, Any] = {
            "jobid" if key == "bare" else key: job.job_id,
            "status": job.status,
            "requesttype": requesttype,
            "requestmethod": requestmethod,
        }
        if job.status == "failed":
            record["message"] = job.message
        if job.file is not None:
            link = self.file_site.url_path(job.file)
            if not self.shapes.relative_links:
                link = request.host_url.rstrip("/") + link
            link_key = self.shapes.link_key or _ASYNC[job.kind][4]
            if link_key == "result.url":
                record["result"] = {"url": link}
            else:
                record[link_key] = link
        return record

    def _complete(self, job: _Job) -> None:
        """Write the job's result file (to a partial name, then renamed) and mark it done."""
        kind, ids, options = job.kind, job.ids, job.options
        csv = options.get("format") == "csv"
        name = f"{kind}-{'-'.join(ids)}-{job.job_id}.{'csv' if csv else 'json'}"
        final = self.results_dir / name
        partial = self.results_dir / f".{name}.part"
        malformed = job.unit in self.faults.malformed_units
        holder = self.shapes.json_holder or _ASYNC[kind][5]
        same = json.dumps([kind, ids, options, vars(self.shapes), malformed], default=str)
        if self.reuse_results and same in self._written:
            earlier, written = self._written[same]
            os.link(earlier, final)
            self.files.append(final)
            job.file, job.records, job.status = name, written, self.shapes.done_word
            self.jobs.finish(job.job_id)
            return
        if kind == "send":
            records: Iterator[dict[str, Any]] = self._activity_records(job)
            count = self._activity_count(job) if holder == "object" else None
            written = write_json(
                partial, records, holder=holder, key="activity", count=count, malformed=malformed
            )
        else:
            subscribers = self._subscriber_records(job)
            if csv:
                written = write_csv(partial, subscribers, malformed=malformed)
            else:
                count = (
                    sum(1 for _ in self._subscriber_records(job)) if holder == "object" else None
                )
                written = write_json(
                    partial, subscribers, holder=holder, count=count, malformed=malformed
                )
        partial.replace(final)
        self._written[same] = (final, written)
        self.files.append(final)
        job.file, job.records, job.status = name, written, self.shapes.done_word
        self.jobs.finish(job.job_id)

    def _subscriber_records(self, job: _Job) -> Iterator[dict[str, Any]]:
        options = job.options
        start = options.get("startdate")
        end = options.get("enddate")
        for unit_id in job.ids:
            for sub in self.dataset.members(
                job.kind, unit_id, status=options["status"], start=start, end=end
            ):
                yield self.dataset.subscriber_record(
                    sub,
                    listid=unit_id if job.kind == "list" else None,
                    customfields=options["customfields"],
                    include_membership=options["include_membership"],
                )

    def _events(self, job: _Job) -> Iterator[tuple[int, dict[str, str]]]:
        k: int = job.options["send_index"]
        start, end = job.options.get("startdate"), job.options.get("enddate")
        style = self.shapes.time_style
        flat_event = self.dataset.flat_event
        for i, ordinal, kind, t, url in self.dataset.activity(k):
            if (start is None or t >= start) and (end is None or t < end):
                yield ordinal, flat_event(i, kind, t, url, style)

    def _activity_records(self, job: _Job) -> Iterator[dict[str, Any]]:
        if self.shapes.activity == "nested":
            return nested_activity(self._events(job))
        return (record for _, record in self._events(job))

    def _activity_count(self, job: _Job) -> int:
        if self.shapes.activity == "nested":
            return sum(1 for _ in nested_activity(self._events(job)))
        k: int = job.options["send_index"]
        return self.dataset.activity_count(
            k, job.options.get("startdate"), job.options.get("enddate")
        )


def _page(records: list[Any], page: tuple[int, int] | None) -> tuple[list[Any], Any]:
    """The records on `page` and the answer's pagination section (None: not paginated)."""
    if page is None:
        return records, None
    limit, start = page
    after = start + limit
    return records[start:after], {"next": str(after) if after < len(records) else "0"}


def _pagination(details: dict[str, Any]) -> tuple[int, int] | None:
    """(limit, start) of `details.pagination`, or None when it is absent."""
    if "pagination" not in details:
        return None
    raw = details["pagination"]
    if not isinstance(raw, dict) or not raw:
        raise _ApiError("pagination must be left out when not used, or give a limit")
    if _blank_to_none(raw.get("limit")) is None:
        raise _ApiError("pagination.limit is required when pagination is used")
    limit = _whole(raw["limit"], "pagination.limit")
    if limit < 1:
        raise _ApiError("pagination.limit must be at least 1")
    start = _blank_to_none(raw.get("next"))
    return limit, (_whole(start, "pagination.next") if start is not None else 0)


def _whole(value: Any, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise _ApiError(f"Invalid {what}: {value!r} is not a whole number")
    return int(text)


def _blank_to_none(value: Any) -> Any:
    """Empty optional members are tolerated: treated as left out."""
    if value is None or value in ("", [], {}):
        return None
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _notify(value: Any) -> None:
    if not isinstance(value, dict) or not value:
        raise _ApiError("notify is required: {type: email|webhook, value}")
    kind = str(value.get("type") or "").lower()
    if kind not in ("email", "webhook"):
        raise _ApiError(f"Invalid notify type {value.get('type')!r}: email or webhook")
    target = value.get("value")
    if not isinstance(target, str) or not target.strip():
        raise _ApiError("notify value is required: an email address or a webhook URL")


def _yyyymmdd(value: Any, what: str) -> int | None:
    """Midnight UTC of a `YYYYMMDD` date as epoch seconds (None when left out)."""
    value = _blank_to_none(value)
    if value is None:
        return None
    text = str(value)
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        day = datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        raise _ApiError(f"Invalid {what} {text!r}: expected YYYYMMDD") from None
    return epoch(day)


def _masked(details: Any) -> Any:
    """A copy of `details` for the log, with values of secret-looking keys masked."""
    if isinstance(details, dict):
        return {
            k: "***" if any(w in str(k).lower() for w in _SECRET_WORDS) else _masked(v)
            for k, v in details.items()
        }
    if isinstance(details, list):
        return [_masked(v) for v in details]
    return copy.copy(details)
