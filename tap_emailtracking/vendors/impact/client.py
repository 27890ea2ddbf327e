"""impact.com's REST API: Basic auth, the account path, error bodies, paged lists and jobs.

Assumptions (docs/impact.md has them all, marked [I]): an error is `{"Status": "ERROR",
"Message", "Errors"}` on 4xx, and scheduling answers invalid input with HTTP 200 and `Status:
ERROR` without URIs (so every 200 is checked); a `Status: ERROR` *with* a `QueuedUri` is an
existing job that impact is retrying. URIs in answers are relative to the API root. Numbers and
booleans of job objects may be strings. The vendor's clock (the `Date` header) decides which day
it is for the daily quotas.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import requests

from tap_emailtracking.errors import AuthenticationError, UnitPutOffError, VendorError
from tap_emailtracking.jobs import JobState, JobStatus, Submission
from tap_emailtracking.transports.http import (
    RETRY_STATUSES,
    ApiCall,
    VendorHttp,
    excerpt,
    expect_json,
    wrong_shape,
)
from tap_emailtracking.vendors.impact.settings import ImpactSettings

LOGGER = logging.getLogger("tap_emailtracking.impact")
VENDOR = "impact.com"
ENDPOINT_SETTING = "impact.base_url"
WRONG_ANSWER_ACTION = (
    "check impact.base_url and impact.account_type; re-run later if impact.com is in "
    "maintenance (nothing was lost)"
)
STATUS = {
    "QUEUED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "ERROR": JobState.RUNNING,  # impact retries it every 15 minutes, at most 5 times
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "CANCELLED": JobState.FAILED,
    "CANCELED": JobState.FAILED,
}
# Scheduling calls are not retried on 429: past the daily quota the wait is hours.
SCHEDULE_RETRY_STATUSES = RETRY_STATUSES - {429}


class QuotaSpentError(UnitPutOffError):
    """The daily quota of a scheduling call is used up: the unit waits for a later run."""


def error_words(answer: object) -> str:
    """`Message` and each `Errors[].Field: Message` of an error body, as one line."""
    if not isinstance(answer, Mapping):
        return excerpt(str(answer))
    parts = [str(answer.get("Message") or answer.get("message") or "").strip()]
    for item in answer.get("Errors") or []:
        if isinstance(item, Mapping):
            field = item.get("Field")
            parts.append(f"{field}: {item.get('Message')}" if field else str(item.get("Message")))
    return excerpt("; ".join(p for p in parts if p) or "(no message)")


class ImpactClient:
    """Speak the REST API for one account (every path below `<base_url>/<type>/<SID>`)."""

    def __init__(self, settings: ImpactSettings, http: VendorHttp) -> None:
        self.settings = settings
        self.http = http
        self.http.session.auth = (settings.account_sid, settings.auth_token)
        self.http.session.headers["Accept"] = "application/json"
        self.vendor_now: datetime | None = None  # from the last answer's Date header

    def url(self, path: str) -> str:
        """An account path (`Campaigns`) or a URI from an answer (`/Mediapartners/…`)."""
        if path.startswith("/"):
            return urljoin(self.settings.base_url.rstrip("/") + "/", path.lstrip("/"))
        return f"{self.settings.account_root}/{path}"

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        what: str,
        stream: str | None,
        method: str = "GET",
        schedule: bool = False,
    ) -> tuple[int, Any]:
        """One call: (HTTP status, parsed JSON). 401/403 and error bodies raise; a scheduling
        call's 429 is `QuotaSpentError` (not retried)."""
        response = self.http.request(
            method,
            self.url(path),
            params=dict(params or {}),
            what=what,
            stream=stream,
            action="check impact.base_url and the network; re-run (nothing was lost)",
            endpoint_setting=ENDPOINT_SETTING,
            retry_statuses=SCHEDULE_RETRY_STATUSES if schedule else RETRY_STATUSES,
        )
        self._clock(response)
        call = ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION)
        answer = expect_json(response, call, allow_empty=True)
        status = response.status_code
        if status == 401:
            raise AuthenticationError(
                f'{what} was refused (HTTP 401): "{error_words(answer)}"',
                vendor=VENDOR,
                stream=stream,
                action="check impact.account_sid and impact.auth_token (Settings > API in "
                "impact.com), and impact.account_type",
            )
        if status == 403 and method != "PUT":
            raise AuthenticationError(
                f'{what} was refused (HTTP 403): "{error_words(answer)}"',
                vendor=VENDOR,
                stream=stream,
                action="the token may be a scoped token without this endpoint: enable it for "
                "the token in impact.com (Settings > API), or use the account's Auth Token",
            )
        if status == 429 and schedule:
            raise QuotaSpentError(
                f'{what} was refused (HTTP 429): "{error_words(answer)}"',
                vendor=VENDOR,
                stream=stream,
                action="the day's quota is used up; the next run continues (the days left are "
                "kept in state)",
            )
        if status >= 400 and status not in (403, 404, 410):
            raise VendorError(
                f'{what} failed (HTTP {status}): "{error_words(answer)}"',
                vendor=VENDOR,
                stream=stream,
                action="fix what impact.com's message says, then re-run; state was not advanced",
            )
        return status, answer

    def _clock(self, response: requests.Response) -> None:
        header = response.headers.get("Date")
        if not header:
            return
        try:
            self.vendor_now = parsedate_to_datetime(header).astimezone(timezone.utc)
        except (TypeError, ValueError):
            LOGGER.debug("impact.com: unreadable Date header %r", header)

    def pages(
        self, path: str, key: str, *, what: str, stream: str | None
    ) -> Iterator[dict[str, Any]]:
        """Every record of a paged list, following `@nextpageuri` ("" on the last page)."""
        uri: str | None = path
        seen: set[str] = set()
        params: dict[str, Any] | None = {"PageSize": 1000}
        while uri:
            status, answer = self.get(uri, params, what=what, stream=stream)
            if status != 200 or not isinstance(answer, Mapping):
                raise wrong_shape(
                    ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION), "no list envelope", answer
                )
            records = answer.get(key)
            if not isinstance(records, list):
                raise wrong_shape(
                    ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION), f"no {key} list", answer
                )
            yield from (r for r in records if isinstance(r, dict))
            params = None  # the next page's URI carries its whole query
            uri = str(answer.get("@nextpageuri") or "").strip() or None
            if uri is not None and uri in seen:
                raise VendorError(
                    f"{what}: @nextpageuri points back to a page already read ({uri})",
                    vendor=VENDOR,
                    stream=stream,
                    action="re-run; if it repeats, report it to impact.com support",
                )
            if uri is not None:
                seen.add(uri)

    def schedule(
        self, path: str, params: Mapping[str, Any], *, what: str, stream: str | None
    ) -> Submission:
        """A ClickExport or ReportExport request: the job id (last segment of `QueuedUri`)."""
        _, answer = self.get(path, params, what=what, stream=stream, schedule=True)
        if not isinstance(answer, Mapping):
            raise wrong_shape(ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION), "no job", answer)
        queued = str(answer.get("QueuedUri") or "").strip()
        if not queued:
            raise VendorError(
                f'{what} was refused: "{error_words(answer)}" (Status {answer.get("Status")})',
                vendor=VENDOR,
                stream=stream,
                action="fix what impact.com's message says (a program id, a date, a report "
                "parameter), then re-run; state was not advanced",
            )
        result = str(answer.get("ResultUri") or "").strip() or None
        return Submission(queued.rstrip("/").rsplit("/", 1)[-1], result=result)

    def job(self, job_id: str, *, stream: str | None) -> JobStatus:
        """`Jobs/{id}`: the job's status as the shared lifecycle reads it."""
        status, answer = self.get(f"Jobs/{job_id}", what=f"Jobs/{job_id}", stream=stream)
        if status in (404, 410):
            return JobStatus(JobState.GONE, f"HTTP {status}")
        if not isinstance(answer, Mapping):
            raise wrong_shape(
                ApiCall(VENDOR, "Jobs", stream, WRONG_ANSWER_ACTION), "no job", answer
            )
        return job_status(answer)

    def replay(self, job_id: str, *, stream: str | None) -> Submission | None:
        """`PUT Jobs/{id}/Replay`: the replayed job (its id from the answer), None when impact
        says it cannot be replayed (403)."""
        status, answer = self.get(
            f"Jobs/{job_id}/Replay",
            method="PUT",
            what=f"Jobs/{job_id}/Replay",
            stream=stream,
            schedule=True,
        )
        if status in (403, 404, 410) or not isinstance(answer, Mapping):
            LOGGER.info("impact.com: job %s cannot be replayed (HTTP %d)", job_id, status)
            return None
        new_id = str(answer.get("Id") or job_id)
        result = str(answer.get("ResultUri") or "").strip() or None
        return Submission(new_id, result=result)


def job_status(job: Mapping[str, Any]) -> JobStatus:
    """A Job object as the shared lifecycle reads it; ERROR keeps waiting (impact retries)."""
    raw = str(job.get("Status") or "").strip().upper()
    state = STATUS.get(raw, JobState.UNKNOWN)
    message = str(job.get("StatusMessage") or "").strip() or None
    if raw == "ERROR":
        LOGGER.warning(
            "impact.com: job %s is in ERROR (%s); impact.com retries it every 15 minutes, up to "
            "five times: waiting",
            job.get("Id"),
            message or "no message",
        )
    percent = str(job.get("PercentageComplete") or "").strip()
    result = str(job.get("ResultUri") or "").strip() or None
    if state is JobState.DONE and result is None:
        return JobStatus(JobState.FAILED, raw, detail="the job is COMPLETED but has no ResultUri")
    return JobStatus(
        state,
        raw or "(empty)",
        result=result if state is JobState.DONE else None,
        progress=f"{percent}% done" if percent else None,
        detail=None if message is None else excerpt(message),
    )
