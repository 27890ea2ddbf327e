"""impact.com's REST API (Campaigns, ClickExport, ReportExport, Jobs) as a WSGI app.

The protocol as served (``docs/impact.md``; [I] marks the sandbox's choices where the docs are
silent or disagree):

* ``<prefix>/{AccountType}/{SID}/...`` with the account's one type (``Mediapartners``,
  ``Advertisers``, ``Agencies``; matched case-insensitively [I]); another type: 404 [I]. HTTP
  Basic: SID and Auth Token; wrong, missing, or a path SID other than the user: 401 [I for the
  last]. A scoped token refused on an endpoint: 403. Without ``Accept: application/json``
  (``*/*`` included) answers are XML (``<ImpactRadiusResponse>``) [I: a minimal rendering].
* URIs in answers are relative to the API root (``/{AccountType}/...``), like impact's.
* ``GET Campaigns?Page=&PageSize=``: the paged envelope (``@page`` ... ``@lastpageuri``, all
  strings, ``@nextpageuri`` relative with its query, ``""`` on the last page), records under
  ``Campaigns``; partner records key the id ``CampaignId``, brand/agency ``Id`` [I].
* ``GET ClickExport?ProgramId=&Date=&ResultFormat=`` (partner, agency [I]) and
  ``GET Programs/{ProgramId}/ClickExport?Date=&ResultFormat=`` (brand); ``GET
  ReportExport/{ReportId}`` with ``START_DATE``/``END_DATE`` (partner, agency; dates,
  inclusive [I]) or ``StartDate``/``EndDate`` (brand; ISO date-times, their dates in the
  account zone, inclusive [I]) and ``SUBAID``. Answer 200 ``{"Status": "QUEUED", "QueuedUri",
  "ResultUri", "ReplayUri"}``; invalid input 200 ``{"Status": "ERROR", "Message", "Errors"}``;
  ``ResultFormat`` CSV (default) or JSON, XML refused [I]; a Date after today refused [I].
  An identical request (same path and parameters, any order) returns the existing job with its
  current status [I]; a FAILED, CANCELLED or expired job is not returned: a new one is made [I].
* Daily quotas per account day in the account zone [I]: ClickExport 10, ReportExport 100;
  every authenticated scheduling request counts, identical repeats and 200-ERROR answers too
  [I], and a Replay counts against its job type's quota [I]. Beyond: 429, ``Retry-After`` to
  the account's next midnight, a Message naming the daily limit.
* Hourly budget per account (default 1,000 per clock hour [I]) over every API call; headers
  per family: partner ``X-RateLimit-Limit-hour``/``-Remaining-hour``/``RateLimit-Reset``
  (seconds), brand/agency ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (epoch on the
  sandbox's clock [I]); 429 with ``Retry-After`` beyond.
* ``GET Jobs/{id}``: the Job object (every seed-page field; unset dates ``""``; numbers and
  ``Replayable`` as strings [I, as the examples]). QUEUED at the first report, RUNNING after,
  COMPLETED at report N (``polls_until_complete``; or by the clock with ``JobSettings``
  durations); reports are ``Jobs/{id}`` polls and ``Download`` answers before completion.
  ERROR is not terminal: a fault shows ERROR and recovers, or ends FAILED after ``error_tries``
  ERROR reports (reports stand in for impact's 15-minute retries [I]). ``GET Jobs`` lists jobs.
* ``GET Jobs/{id}/Download``: 202 + Job before completion (and for FAILED/CANCELLED [I]);
  completed: 302 to a signed URL on another origin (``localhost`` <-> ``127.0.0.1`` swapped)
  under ``/impact-files/<token>/<file>?Expires=&X-Signature=`` which refuses an
  ``Authorization`` header (400) and a bad or stale signature (403) [I]; ``Mode=Stream``
  (case-insensitive): 200 with the file. Both honour ``Range``. JSON results carry the paged
  envelope with rows under ``Clicks``/``Records`` [I], paged by ``Page=n`` when
  ``result_page_size`` is set; CSV is one file with a header, nested objects flattened [I].
  A gone result: 410 [I].
* ``PUT Jobs/{id}/Replay``: 200 with the Job, the same Id [I], QUEUED again; 403 when not
  replayable or QUEUED/RUNNING/ERROR.
* A submission while ``jobs.limit`` jobs are in flight: 429 "Too many export jobs in
  progress", ``Retry-After: 1`` [I: impact documents no such limit].
* The ``Date`` header carries the sandbox's clock (``now()``: the wall clock plus
  ``day_offset`` days), which the quotas follow.

Every call is logged in ``requests`` (time on the sandbox's clock, method, endpoint, path,
query, Basic user, whether Authorization was sent, HTTP status, job id); the token never is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import msgspec
from werkzeug.wrappers import Request, Response

from vendor_sandbox.impact.data import ACCOUNT_TYPES, CSV_CLICK_COLUMNS, ImpactDataset
from vendor_sandbox.impact.faults import ImpactFaults, ImpactShapes
from vendor_sandbox.jobs import (
    DONE,
    QUEUED,
    JobBoard,
    JobBoardCounters,
    JobLimitError,
    JobSettings,
)
from vendor_sandbox.servers.faults import DownloadFaults
from vendor_sandbox.servers.http_files import HttpFiles

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["DAILY_LIMITS", "FILES_PREFIX", "ImpactApi"]

DAY = 86_400
HOUR = 3600
FILES_PREFIX = "/impact-files"
DAILY_LIMITS = {"ClickExport": 10, "ReportExport": 100}
_JOB_TYPE_QUOTA = {"ClickExport": "ClickExport", "ApiReport": "ReportExport"}
_TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
_BUFFER = 1 << 20
UTC = timezone.utc


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


class _InvalidError(Exception):
    """Invalid scheduling input: answered 200 with Status ERROR."""

    def __init__(self, message: str, field_name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field_name


@dataclass
class _Job:
    job_id: str
    type: str  # ClickExport or ApiReport
    unit: str
    identity: str
    program_id: str
    params: dict[str, Any]
    created: float
    token: str
    reports: int = 0
    status: str = "QUEUED"
    fate: str | None = None  # "fail", "cancel", "recover"
    error_reports: int = 0
    started: float | None = None
    completed: float | None = None
    failed: float | None = None
    cancelled: float | None = None
    progress: float | None = None
    message: str = "Job has been queued."
    files: list[str] = field(default_factory=list)
    records: int | None = None
    expired: bool = False
    replays: int = 0
    processed: int = 0


class ImpactApi(JobBoardCounters):
    """WSGI app of impact.com's API under `prefix` and its signed result URLs.

    Switches: ``shapes`` (:class:`ImpactShapes`), ``faults`` (:class:`ImpactFaults`),
    ``download_faults`` (:class:`DownloadFaults` of result downloads), ``reuse_results``,
    ``daily_limits``, the clock (``day_offset``, ``advance_days``, ``set_today``). Counters:
    ``requests``, ``calls(endpoint)``, ``hourly_counts()``, ``daily_counts()``,
    ``quota_used(kind)``, ``jobs`` (the board), ``files``.
    """

    def __init__(
        self,
        dataset: ImpactDataset,
        results_dir: Path,
        *,
        account_sid: str,
        auth_token: str,
        prefix: str = "/impact",
        polls_until_complete: int = 3,
        jobs: JobSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.dataset = dataset
        self.account_type = dataset.spec.account_type
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.prefix = "/" + prefix.strip("/")
        self.polls_until_complete = max(1, polls_until_complete)
        self.clock = clock
        self.wall_clock = wall_clock
        self.day_offset = 0
        self.shapes = ImpactShapes()
        self.faults = ImpactFaults()
        self.download_faults = DownloadFaults()
        self.daily_limits = dict(DAILY_LIMITS)
        self.file_site = HttpFiles(self.results_dir, FILES_PREFIX, faults=self.download_faults)
        self.jobs = JobBoard(clock, jobs)
        self.requests: list[dict[str, Any]] = []
        self.files: list[Path] = []
        # Benchmarks: a job asking what an earlier one asked gets hard links to its files.
        self.reuse_results = False
        self._written: dict[str, tuple[list[Path], int]] = {}
        self._jobs: dict[str, _Job] = {}
        self._by_identity: dict[str, str] = {}
        self._quota: dict[tuple[str, str], int] = {}
        self._hourly: dict[int, int] = {}
        self._secret = hashlib.sha256(f"{account_sid}:{auth_token}:files".encode()).digest()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------ the clock
    def now(self) -> float:
        """The sandbox's clock: wall-clock seconds plus ``day_offset`` days."""
        return self.wall_clock() + self.day_offset * DAY

    @property
    def today(self) -> date:
        """The account's calendar day now (in its time zone)."""
        return datetime.fromtimestamp(self.now(), self.dataset.zone).date()

    def advance_days(self, days: int = 1) -> None:
        """Move the clock `days` whole days on (quotas of the new day start at zero)."""
        self.day_offset += days

    def set_today(self, day: date) -> None:
        """Move the clock by whole days so that `today` is `day`."""
        self.day_offset += (day - self.today).days

    # --------------------------------------------------------------------------- counters
    def calls(self, endpoint: str) -> list[dict[str, Any]]:
        """Logged calls of one endpoint (``ENDPOINTS`` or ``SignedFile``), oldest first."""
        return [r for r in self.requests if r["endpoint"] == endpoint]

    def hourly_counts(self) -> dict[str, int]:
        """API calls counted against the hourly budget, per clock hour (``YYYY-MM-DDTHH:00Z``)."""
        with self._lock:
            return {
                datetime.fromtimestamp(hour * HOUR, UTC).strftime("%Y-%m-%dT%H:00Z"): n
                for hour, n in sorted(self._hourly.items())
            }

    def daily_counts(self) -> dict[str, dict[str, int]]:
        """Logged calls per account day (``YYYY-MM-DD``) and endpoint, 429s included."""
        out: dict[str, dict[str, int]] = {}
        for entry in list(self.requests):
            per = out.setdefault(entry["day"], {})
            per[entry["endpoint"]] = per.get(entry["endpoint"], 0) + 1
        return out

    def quota_used(self, kind: str, day: date | None = None) -> int:
        """Scheduling requests of `kind` (ClickExport, ReportExport) counted on `day` (today)."""
        with self._lock:
            return self._quota.get((kind, (day or self.today).isoformat()), 0)

    def spend_quota(self, kind: str, used: int | None = None, day: date | None = None) -> None:
        """Preset the count of `kind` on `day` (default today) to `used` (default: all of it)."""
        if kind not in self.daily_limits:
            raise ValueError(f"kind must be one of {sorted(self.daily_limits)}")
        with self._lock:
            count = self.daily_limits[kind] if used is None else used
            self._quota[(kind, (day or self.today).isoformat())] = count

    def job(self, job_id: str) -> dict[str, Any] | None:
        """What a job asked for and where it stands, or None."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return {
                "type": job.type,
                "unit": job.unit,
                "program_id": job.program_id,
                "params": dict(job.params),
                "status": job.status,
                "reports": job.reports,
                "files": list(job.files),
                "records": job.records,
                "expired": job.expired,
                "replays": job.replays,
            }

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def expire(self, job_id: str) -> None:
        """The job's result is gone: Download answers 410 until it is replayed."""
        with self._lock:
            self._jobs[job_id].expired = True
        self.jobs.expire(job_id)

    # ------------------------------------------------------------------------------ WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        now = self.now()
        environ["vendor_sandbox.now"] = now  # the Date header follows the sandbox's clock
        path = environ.get("PATH_INFO", "")
        if path.startswith(FILES_PREFIX + "/"):
            request = Request(environ)
            served: Callable[..., Iterable[bytes]] = self._signed_file(request, environ, now)
            return served(environ, start_response)
        request = Request(environ)
        answer: Callable[..., Iterable[bytes]] = self._api(request, environ, now)
        return answer(environ, start_response)

    def _entry(self, request: Request, now: float, endpoint: str) -> dict[str, Any]:
        user = request.authorization.username if request.authorization else None
        entry: dict[str, Any] = {
            "at": now,
            "day": datetime.fromtimestamp(now, self.dataset.zone).date().isoformat(),
            "method": request.method,
            "endpoint": endpoint,
            "path": request.path,
            "query": {k: request.args.getlist(k) for k in request.args},
            "user": user,
            "authorization": "Authorization" in request.headers,
            "http_status": None,
            "job_id": None,
        }
        with self._lock:
            self.requests.append(entry)
        return entry

    def _api(self, request: Request, environ: WSGIEnvironment, now: float) -> Any:
        rest = request.path[len(self.prefix) :] if request.path.startswith(self.prefix) else ""
        parts = [p for p in rest.split("/") if p]
        endpoint, route = _route(parts)
        entry = self._entry(request, now, endpoint)
        headers: dict[str, str] = {}
        try:
            if len(parts) < 2 or route is None:
                raise _ApiError(404, "Not Found: no such resource")
            if parts[0].lower() not in (t.lower() for t in ACCOUNT_TYPES):
                raise _ApiError(404, f"Not Found: unknown account type {parts[0]!r}")
            if parts[0].lower() != self.account_type.lower():
                raise _ApiError(404, f"Not Found: this account is not under /{parts[0]}")
            self._authenticate(request, parts[1])
            headers = self._meter(now)
            if endpoint in self.faults.scoped_endpoints:
                raise _ApiError(
                    403, f"This scoped token is not permitted to access the {endpoint} endpoint"
                )
            expected = "PUT" if endpoint == "Replay" else "GET"
            if request.method != expected:
                raise _ApiError(405, f"Method {request.method} is not supported here")
            answer = self._serve(request, environ, endpoint, route, entry, now)
        except _ApiError as exc:
            headers.update(exc.headers)
            body = {"Status": "ERROR", "Message": exc.message, "Errors": exc.errors}
            answer = self._document(request, body, exc.status, exempt=False)
        if isinstance(answer, Response):
            answer.headers.update(headers)
            entry["http_status"] = answer.status_code
            return answer
        answer.headers = headers  # a file served through the file site
        return answer

    def _authenticate(self, request: Request, path_sid: str) -> None:
        auth = request.authorization
        good = (
            auth is not None
            and auth.type == "basic"
            and hmac.compare_digest(str(auth.username or ""), self.account_sid)
            and hmac.compare_digest(str(auth.password or ""), self.auth_token)
        )
        if not good or self.faults.revoked_token or path_sid != self.account_sid:
            raise _ApiError(401, "Authentication failed: check the Account SID and Auth Token")

    def _meter(self, now: float) -> dict[str, str]:
        """Count one call against the hour (or refuse it) and return the rate-limit headers."""
        with self._lock:
            hour = int(now // HOUR)
            ends = (hour + 1) * HOUR
            storm = self.faults.storm > 0
            used = self._hourly.get(hour, 0)
            limit = self.faults.hourly_limit
            admitted = not storm and used < limit
            if admitted:
                used += 1
                self._hourly[hour] = used
            if storm:
                self.faults.storm -= 1
        family = self.shapes.rate_headers or (
            "partner" if self.account_type == "Mediapartners" else "brand"
        )
        left = max(0, limit - used)
        if family == "partner":
            headers = {
                "X-RateLimit-Limit-hour": str(limit),
                "X-RateLimit-Remaining-hour": str(left),
                "RateLimit-Reset": str(math.ceil(ends - now)),
            }
        else:
            headers = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(left),
                "X-RateLimit-Reset": str(int(ends)),
            }
        if not admitted:
            wait = self.faults.storm_retry_after if storm else math.ceil(ends - now)
            raise _ApiError(
                429,
                "Too many requests hit the API too quickly. Reduce your requests significantly.",
                headers={**headers, "Retry-After": str(wait)},
            )
        return headers

    def _document(self, request: Request, body: Any, status: int, *, exempt: bool) -> Response:
        """`body` as JSON, or as XML when the request did not ask for JSON (impact's default)."""
        accept = request.headers.get("Accept", "")
        if exempt or "application/json" in accept:
            return Response(json.dumps(body), status=status, content_type="application/json")
        xml = f'<?xml version="1.0" encoding="utf-8"?>\n{_xml("ImpactRadiusResponse", body)}'
        return Response(xml, status=status, content_type="application/xml")

    # ---------------------------------------------------------------------------- endpoints
    def _serve(
        self,
        request: Request,
        environ: WSGIEnvironment,
        endpoint: str,
        route: list[str],
        entry: dict[str, Any],
        now: float,
    ) -> Any:
        if endpoint == "Campaigns":
            records = self.dataset.campaigns(self.account_type)
            return self._document(
                request, self._listing(request, "Campaigns", records), 200, exempt=False
            )
        if endpoint == "Jobs":
            return self._document(request, self._job_list(request), 200, exempt=False)
        if endpoint in ("ClickExport", "ReportExport"):
            with self._lock:
                body = self._schedule(request, endpoint, route, entry, now)
            return self._document(request, body, 200, exempt=False)
        with self._lock:
            job = self._jobs.get(route[0])
            if job is None:
                raise _ApiError(404, "Job not found")
            entry["job_id"] = job.job_id
            if endpoint == "Job":
                self._report(job, now)
                return self._document(request, self._job_object(job), 200, exempt=False)
            if endpoint == "Replay":
                return self._document(request, self._replay(job, now), 200, exempt=False)
            return self._download(request, environ, job, now, entry)

    def _base(self) -> str:
        return f"/{self.account_type}/{self.account_sid}"

    def _listing(self, request: Request, key: str, records: list[Any]) -> dict[str, Any]:
        page = _positive(request.args.get("Page"), 1, "Page")
        size = _positive(request.args.get("PageSize"), self.shapes.list_page_size, "PageSize")
        path = request.path[len(self.prefix) :]
        return _envelope(path, dict(request.args.items()), key, records, page, size)

    def _job_list(self, request: Request) -> dict[str, Any]:
        after = _date_arg(request.args.get("CreatedAfter"), "CreatedAfter")
        before = _date_arg(request.args.get("CreatedBefore"), "CreatedBefore")
        zone = self.dataset.zone
        with self._lock:
            chosen = [
                self._job_object(job)
                for job in self._jobs.values()
                if (after is None or datetime.fromtimestamp(job.created, zone).date() >= after)
                and (before is None or datetime.fromtimestamp(job.created, zone).date() <= before)
            ]
        return self._listing(request, "Jobs", chosen)

    # ----------------------------------------------------------------------------- scheduling
    def _take_quota(self, kind: str, now: float) -> None:
        """Count one scheduling request of `kind` today, or refuse it with 429."""
        zone = self.dataset.zone
        local = datetime.fromtimestamp(now, zone)
        key = (kind, local.date().isoformat())
        limit = self.daily_limits[kind]
        if self._quota.get(key, 0) >= limit:
            midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
            wait = max(1, math.ceil(midnight.timestamp() - now))
            raise _ApiError(
                429,
                f"Daily limit of {limit} requests for {kind} exceeded; it resets at midnight "
                f"{self.dataset.spec.timezone}",
                headers={"Retry-After": str(wait)},
            )
        self._quota[key] = self._quota.get(key, 0) + 1

    def _schedule(
        self, request: Request, endpoint: str, route: list[str], entry: dict[str, Any], now: float
    ) -> dict[str, Any]:
        report = None
        if endpoint == "ReportExport":
            report = self.dataset.report(route[0])
            if report is None:
                raise _ApiError(
                    404,
                    "No report exists with the supplied Id, or the report is not API accessible",
                )
        program_in_path = route[0] if endpoint == "ClickExport" and route else None
        if program_in_path is not None and self.dataset.program_index(program_in_path) is None:
            raise _ApiError(404, f"Program {program_in_path} not found")
        self._take_quota(endpoint, now)
        try:
            if self.faults.reject_next > 0:
                self.faults.reject_next -= 1
                raise _InvalidError(self.faults.reject_message)
            fmt = self._result_format(request)
            if endpoint == "ClickExport":
                job_type = "ClickExport"
                params = self._click_params(request, program_in_path, fmt)
                programs = params["programs"]
                unit = f"click:{','.join(programs) if programs else '*'}:{params['date']}"
                program_id = programs[0] if programs and len(programs) == 1 else ""
            else:
                if report is None:  # pragma: no cover - checked above
                    raise _ApiError(404, "No such report")
                job_type = "ApiReport"
                params = self._report_params(request, report.report_id, fmt)
                sub = params["subaid"]
                unit = f"report:{report.report_id}:{params['first']}:{params['last']}:{sub or '*'}"
                program_id = sub or ""
        except _InvalidError as exc:
            errors = [{"Field": exc.field, "Message": exc.message}] if exc.field else []
            return {"Status": "ERROR", "Message": exc.message, "Errors": errors}
        items = sorted((k, v) for k, v in request.args.items(multi=True) if k != "Page")
        identity = f"{request.path.lower()}?{urlencode(items)}"
        existing = self._jobs.get(self._by_identity.get(identity, ""))
        if (
            existing is not None
            and existing.status not in ("FAILED", "CANCELLED")
            and not (existing.expired)
        ):
            entry["job_id"] = existing.job_id
            return {"Status": existing.status, **self._uris(existing)}
        try:
            job = self._new_job(job_type, unit, identity, program_id, params, now)
        except JobLimitError:
            key = (endpoint, datetime.fromtimestamp(now, self.dataset.zone).date().isoformat())
            self._quota[key] -= 1  # refused: counts against nothing
            raise _ApiError(
                429, "Too many export jobs in progress", headers={"Retry-After": "1"}
            ) from None
        entry["job_id"] = job.job_id
        return {"Status": "QUEUED", **self._uris(job)}

    def _result_format(self, request: Request) -> str:
        fmt = (request.args.get("ResultFormat") or self.shapes.result_format_default).upper()
        if fmt == "XML":
            raise _InvalidError("ResultFormat XML is not served by the sandbox", "ResultFormat")
        if fmt not in ("CSV", "JSON"):
            raise _InvalidError(f"Invalid ResultFormat {fmt!r}: CSV, JSON or XML", "ResultFormat")
        return fmt

    def _click_params(
        self, request: Request, program_in_path: str | None, fmt: str
    ) -> dict[str, Any]:
        raw = request.args.get("Date")
        day = self.today if not raw else _day(raw, "Date")
        if day > self.today:
            raise _InvalidError(f"Date {raw} is in the future", "Date")
        if program_in_path is not None:
            programs: list[str] | None = [program_in_path]
        else:
            asked = [p for p in request.args.getlist("ProgramId") if p]
            for pid in asked:
                if self.dataset.program_index(pid) is None:
                    raise _InvalidError(f"Invalid ProgramId {pid}", "ProgramId")
            programs = asked or None
        return {"date": day.isoformat(), "programs": programs, "format": fmt}

    def _report_params(self, request: Request, report_id: str, fmt: str) -> dict[str, Any]:
        if self.account_type == "Advertisers":
            first = self._moment_day(request.args.get("StartDate"), "StartDate")
            last = self._moment_day(request.args.get("EndDate"), "EndDate")
        else:
            first = _day(request.args.get("START_DATE") or "", "START_DATE")
            last = _day(request.args.get("END_DATE") or "", "END_DATE")
        if last < first:
            raise _InvalidError("The end date is before the start date", "END_DATE")
        sub = request.args.get("SUBAID") or None
        if sub is not None and self.dataset.program_index(sub) is None:
            raise _InvalidError(f"Invalid SUBAID {sub}", "SUBAID")
        return {
            "report_id": report_id,
            "first": first.isoformat(),
            "last": last.isoformat(),
            "subaid": sub,
            "format": fmt,
        }

    def _moment_day(self, raw: str | None, name: str) -> date:
        if not raw:
            raise _InvalidError(f"{name} is required", name)
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise _InvalidError(
                f"Invalid {name} {raw!r}: expected an ISO 8601 date-time", name
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.dataset.zone).date()

    def _new_job(
        self,
        job_type: str,
        unit: str,
        identity: str,
        program_id: str,
        params: dict[str, Any],
        now: float,
    ) -> _Job:
        n = len(self._jobs) + 1
        digest = hashlib.sha256(f"{self.account_sid}:{n}:{unit}".encode()).hexdigest()
        job_id = f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"
        token = hashlib.sha256(self._secret + job_id.encode()).hexdigest()[:24]
        self.jobs.submit(job_id, unit)
        job = _Job(job_id, job_type, unit, identity, program_id, params, now, token)
        self._decide_fate(job)
        self._jobs[job_id] = job
        self._by_identity[identity] = job_id
        return job

    def _decide_fate(self, job: _Job) -> None:
        faults = self.faults
        if job.unit in faults.fail_units:
            job.fate = "fail"
        elif job.unit in faults.cancel_units:
            job.fate = "cancel"
        elif job.unit in faults.recover_units:
            job.fate, job.error_reports = "recover", faults.recover_units[job.unit]
        elif faults.fail_next > 0:
            faults.fail_next -= 1
            job.fate = "fail"
        elif faults.cancel_next > 0:
            faults.cancel_next -= 1
            job.fate = "cancel"
        elif faults.recover_next > 0:
            faults.recover_next -= 1
            job.fate, job.error_reports = "recover", faults.recover_reports

    def _uris(self, job: _Job) -> dict[str, str]:
        base = f"{self._base()}/Jobs/{job.job_id}"
        return {"QueuedUri": base, "ResultUri": f"{base}/Download", "ReplayUri": f"{base}/Replay"}

    # ---------------------------------------------------------------------------------- jobs
    def _report(self, job: _Job, now: float) -> None:
        """Advance `job` by one status report."""
        if job.status in _TERMINAL:
            return
        job.reports += 1
        if job.reports == 1:
            job.status, job.message = "QUEUED", "Job has been queued."
            return
        if job.started is None:
            job.started = now
        errors = self.faults.error_tries if job.fate == "fail" else job.error_reports
        if job.fate in ("fail", "recover") and job.reports <= 1 + errors:
            job.status, job.failed, job.progress = "ERROR", now, now
            tries = job.reports - 1
            job.message = f"Job processing raised an error (try {tries}); it will be retried."
            return
        if job.fate == "fail":
            job.status, job.failed = "FAILED", now
            job.message = f"Job failed after {self.faults.error_tries} unsuccessful tries."
            self.jobs.finish(job.job_id)
            return
        polls = job.reports - (errors if job.fate == "recover" else 0)
        stage = self.jobs.stage(job.job_id, polls=polls, polls_until_done=self.polls_until_complete)
        if stage == DONE:
            if job.fate == "cancel":
                job.status, job.cancelled = "CANCELLED", now
                job.message = "Job was cancelled by an impact.com system administrator."
                self.jobs.finish(job.job_id)
                return
            self._complete(job, now)
            return
        job.status = "QUEUED" if stage == QUEUED else "RUNNING"
        job.message = "Job has been queued." if stage == QUEUED else "Job is running."
        job.progress = now

    def _job_object(self, job: _Job) -> dict[str, Any]:
        zone = self.dataset.zone

        def stamp(t: float | None) -> str:
            return (
                "" if t is None else datetime.fromtimestamp(t, zone).isoformat(timespec="seconds")
            )

        done = job.status == "COMPLETED"
        percent = 100 if done else (50 if job.status == "RUNNING" else 0)
        processed = job.processed if done else 0
        replayable = job.unit not in self.faults.unreplayable_units
        typed = self.shapes.typed_job_fields
        return {
            "Id": job.job_id,
            "Type": job.type,
            "ProgramId": job.program_id,
            "CreatedBy": self.account_sid,
            "CreatedDate": stamp(job.created),
            "StartedDate": stamp(job.started),
            "CompletedDate": stamp(job.completed),
            "AbandonedDate": "",
            "CancelledDate": stamp(job.cancelled),
            "FailedDate": stamp(job.failed),
            "LastProgressUpdateDate": stamp(job.progress),
            "Status": job.status,
            "StatusMessage": job.message,
            "RecordsProcessed": processed if typed else str(processed),
            "PercentageComplete": percent if typed else str(percent),
            "Replayable": replayable if typed else ("true" if replayable else "false"),
            "ResultUri": self._uris(job)["ResultUri"],
        }

    def _replay(self, job: _Job, now: float) -> dict[str, Any]:
        if job.unit in self.faults.unreplayable_units or job.status not in _TERMINAL:
            raise _ApiError(
                403, "The job is not in a replayable state or is not of a replayable type"
            )
        self._take_quota(_JOB_TYPE_QUOTA[job.type], now)
        job.replays += 1
        job.status, job.reports, job.expired = "QUEUED", 0, False
        job.started = job.completed = job.cancelled = job.failed = None
        job.fate, job.error_reports, job.files, job.records = None, 0, [], None
        job.message = "Job has been queued."
        job.progress = now
        self._decide_fate(job)
        self.jobs.submit(job.job_id, job.unit)
        self._by_identity[job.identity] = job.job_id
        return self._job_object(job)

    # ------------------------------------------------------------------------------ results
    def _complete(self, job: _Job, now: float) -> None:
        """Write the job's result (pages for paged JSON), streaming, and mark it COMPLETED."""
        params = job.params
        fmt = params["format"]
        size = self.shapes.result_page_size if fmt == "JSON" else None
        folder = self.results_dir / job.token
        folder.mkdir(parents=True, exist_ok=True)
        same = json.dumps(
            [job.type, params, self.account_type, size, self.dataset.spec.seed], default=str
        )
        stem = f"{job.job_id}-r{job.replays}"
        if self.reuse_results and same in self._written:
            earlier, written = self._written[same]
            names = []
            for source in earlier:
                target = folder / f"{stem}{source.name[source.name.index('-p') :]}"
                os.link(source, target)
                names.append(target.name)
                self.files.append(target)
        else:
            paths, written = self._write(job, folder, stem, fmt, size)
            names = [p.name for p in paths]
            self._written[same] = (paths, written)
            self.files.extend(paths)
        job.files, job.records, job.processed = names, written, written
        job.status, job.completed, job.progress = "COMPLETED", now, now
        job.message = "Job processing completed successfully."
        if job.unit in self.faults.expire_units:
            job.expired = True
            self.faults.expire_units.discard(job.unit)  # once: its replay or next job is kept
        self.jobs.finish(job.job_id)

    def _write(
        self, job: _Job, folder: Path, stem: str, fmt: str, size: int | None
    ) -> tuple[list[Path], int]:
        dataset = self.dataset
        params = job.params
        report = None
        if job.type == "ClickExport":
            day = date.fromisoformat(params["date"])
            total = dataset.clicks_on(params["programs"], day)
            rows: Iterator[Any] = dataset.click_rows(params["programs"], day)
            key = "Clicks"
        else:
            report = dataset.report(params["report_id"])
            if report is None:  # pragma: no cover - a job names a configured report
                raise _ApiError(404, "No such report")
            first, last = date.fromisoformat(params["first"]), date.fromisoformat(params["last"])
            total = dataset.report_count(report, first, last, params["subaid"])
            rows = dataset.report_rows(report, first, last, params["subaid"])
            key = "Records"
        if fmt == "CSV":
            path = folder / f"{stem}-p1.csv"
            columns = CSV_CLICK_COLUMNS if report is None else report.columns
            as_list = job.type == "ClickExport"
            _write_csv(path, columns, rows, as_list=as_list)
            return [path], total
        if job.type == "ClickExport":
            kind = self.account_type
            rows = (dataset.click_record(values, kind) for values in rows)
        page_size = size or max(total, 1)
        pages = max(1, math.ceil(total / page_size))
        download = f"{self._base()}/Jobs/{job.job_id}/Download"
        paths = []
        for page in range(1, pages + 1):
            path = folder / f"{stem}-p{page}.json"
            start = (page - 1) * page_size
            count = max(0, min(page_size, total - start))
            head = _envelope_head(download, page, pages, page_size, total, start, count)
            _write_json_page(path, head, key, rows, count)
            paths.append(path)
        return paths, total

    def _download(
        self,
        request: Request,
        environ: WSGIEnvironment,
        job: _Job,
        now: float,
        entry: dict[str, Any],
    ) -> Any:
        if job.status != "COMPLETED":
            self._report(job, now)
        if job.status != "COMPLETED":
            return self._document(request, self._job_object(job), 202, exempt=True)
        if job.expired:
            raise _ApiError(
                410,
                f"The result of job {job.job_id} is no longer available; replay the job",
            )
        page = _positive(request.args.get("Page"), 1, "Page")
        if page > len(job.files):
            raise _ApiError(404, f"Page {page} of job {job.job_id}'s result does not exist")
        name = f"{job.token}/{job.files[page - 1]}"
        stream = (request.args.get("Mode") or "").lower() == "stream"
        if stream or not self.shapes.redirect:
            inner = dict(environ)
            inner["PATH_INFO"] = self.file_site.url_path(name)
            return _Passthrough(self.file_site, inner, entry)
        expires = int(now) + self.shapes.signed_url_seconds
        signature = self._sign(name, expires)
        host = request.host
        other = (
            host.replace("127.0.0.1", "localhost")
            if "127.0.0.1" in host
            else (host.replace("localhost", "127.0.0.1"))
        )
        location = (
            f"{request.scheme}://{other}{self.file_site.url_path(name)}"
            f"?Expires={expires}&X-Signature={signature}"
        )
        return Response(
            "Redirecting to the result file",
            status=302,
            headers={"Location": location},
            content_type="text/plain",
        )

    def _sign(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _signed_file(self, request: Request, environ: WSGIEnvironment, now: float) -> Any:
        """A signed result URL: no credentials allowed, signature and expiry checked [I]."""
        entry = self._entry(request, now, "SignedFile")
        name = request.path[len(FILES_PREFIX) + 1 :]
        try:
            expires = int(request.args.get("Expires") or "0")
        except ValueError:
            expires = 0
        signature = request.args.get("X-Signature") or ""
        if "Authorization" in request.headers:
            answer = Response(
                "Only one auth mechanism allowed; the signed URL needs no Authorization header",
                status=400,
                content_type="text/plain",
            )
        elif not hmac.compare_digest(signature, self._sign(name, expires)) or expires < now:
            answer = Response(
                "Request has expired or the signature does not match",
                status=403,
                content_type="text/plain",
            )
        else:
            return _Passthrough(self.file_site, environ, entry)
        entry["http_status"] = answer.status_code
        return answer


class _Passthrough:
    """Serve a file through `HttpFiles` (at a rewritten path), adding `headers` and logging the
    status it answered in `entry`."""

    def __init__(
        self, site: HttpFiles, environ: WSGIEnvironment, entry: dict[str, Any] | None
    ) -> None:
        self.site, self.environ, self.entry = site, environ, entry
        self.headers: dict[str, str] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if self.entry is not None:
                self.entry["http_status"] = int(status.split(maxsplit=1)[0])
            return start_response(status, [*headers, *self.headers.items()], exc_info)

        return self.site(self.environ, start)


def _route(parts: list[str]) -> tuple[str, list[str] | None]:
    """(endpoint name, its path arguments) of `/{Type}/{SID}/...` parts; None: no route."""
    rest = list(parts[2:])
    lower = [p.lower() for p in rest]
    if lower == ["campaigns"]:
        return "Campaigns", []
    if lower == ["clickexport"]:
        return "ClickExport", []
    if len(rest) == 3 and lower[0] == "programs" and lower[2] == "clickexport":
        return "ClickExport", [rest[1]]
    if len(rest) == 2 and lower[0] == "reportexport":
        return "ReportExport", [rest[1]]
    if lower == ["jobs"]:
        return "Jobs", []
    if len(rest) == 2 and lower[0] == "jobs":
        return "Job", [rest[1]]
    if len(rest) == 3 and lower[0] == "jobs" and lower[2] == "download":
        return "Download", [rest[1]]
    if len(rest) == 3 and lower[0] == "jobs" and lower[2] == "replay":
        return "Replay", [rest[1]]
    return "Unknown", None


def _envelope(
    path: str, query: dict[str, str], key: str, records: list[Any], page: int, size: int
) -> dict[str, Any]:
    total = len(records)
    pages = max(1, math.ceil(total / size))
    start = (page - 1) * size
    shown = records[start : start + size]

    def uri(n: int) -> str:
        return f"{path}?{urlencode({**query, 'Page': str(n), 'PageSize': str(size)})}"

    return {
        "@page": str(page),
        "@numpages": str(pages),
        "@pagesize": str(size),
        "@total": str(total),
        "@start": str(start),
        "@end": str(start + len(shown) - 1 if shown else start),
        "@uri": uri(page),
        "@firstpageuri": uri(1),
        "@previouspageuri": uri(page - 1) if 1 < page <= pages + 1 else "",
        "@nextpageuri": uri(page + 1) if page < pages else "",
        "@lastpageuri": uri(pages),
        key: shown,
    }


def _envelope_head(
    download: str, page: int, pages: int, size: int, total: int, start: int, count: int
) -> dict[str, str]:
    def uri(n: int) -> str:
        return f"{download}?Mode=Stream&Page={n}"

    return {
        "@page": str(page),
        "@numpages": str(pages),
        "@pagesize": str(size),
        "@total": str(total),
        "@start": str(start),
        "@end": str(start + count - 1 if count else start),
        "@uri": uri(page),
        "@firstpageuri": uri(1),
        "@previouspageuri": uri(page - 1) if page > 1 else "",
        "@nextpageuri": uri(page + 1) if page < pages else "",
        "@lastpageuri": uri(pages),
    }


def _write_json_page(
    path: Path, head: dict[str, str], key: str, rows: Iterator[Any], count: int
) -> None:
    """One JSON result page: the envelope, then `count` rows taken from `rows`, streamed."""
    encode = msgspec.json.Encoder().encode
    partial = path.with_name(f".{path.name}.part")
    with partial.open("wb", buffering=_BUFFER) as out:
        out.write(msgspec.json.encode(head)[:-1] + f', "{key}": ['.encode())
        for n in range(count):
            row = next(rows)
            out.write((b"\n" if n == 0 else b",\n") + encode(row))
        out.write(b"\n]}\n")
    partial.replace(path)


def _write_csv(path: Path, columns: Iterable[str], rows: Iterator[Any], *, as_list: bool) -> None:
    import csv  # noqa: PLC0415

    names = list(columns)
    partial = path.with_name(f".{path.name}.part")
    with partial.open("w", encoding="utf-8", newline="", buffering=_BUFFER) as out:
        writer = csv.writer(out)
        writer.writerow(names)
        if as_list:
            writer.writerows(rows)
        else:
            writer.writerows([row[c] for c in names] for row in rows)
    partial.replace(path)


def _positive(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise _ApiError(400, f"Invalid {name} {raw!r}: a whole number from 1",
                        [{"Field": name, "Message": "Not a positive integer"}])  # fmt: skip
    return int(raw)


def _day(raw: str, name: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise _InvalidError(f"Invalid {name} {raw!r}: expected yyyy-MM-dd", name) from None


def _date_arg(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise _ApiError(400, f"Invalid {name} {raw!r}: expected YYYY-MM-DD") from None


def _xml(tag: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_xml(str(k).lstrip("@"), v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(value, list):
        item = tag[:-1] if tag.endswith("s") else "Item"
        return f"<{tag}>{''.join(_xml(item, v) for v in value)}</{tag}>"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header value (for tests)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
