"""Pinpointe's JSON API: the envelope, its errors, paging, async submissions and AsyncJobStatus.

Assumptions (docs/pinpointe.md has them all, marked [I]): a failure is `status` FAILED or ERROR
with `errormessage` a string or a list, on HTTP 200, 400 or 401; the paging `next` sits at the
top level or inside `data`; a job id is the first key like `job_?id` in an async call's `data`;
the done word is not documented, so every plausible one is accepted and an unknown word is logged
once; a done status record carries its result link under a key naming a url, link, file,
download or result. "Jobs not found" means none of the ids asked about exists any more (expired).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tap_emailtracking.errors import AuthenticationError, JobLimitReachedError, VendorError
from tap_emailtracking.jobs import JobState, JobStatus, Submission
from tap_emailtracking.transports.http import ApiCall, VendorHttp, excerpt, expect_json, wrong_shape
from tap_emailtracking.vendors.pinpointe.settings import PinpointeSettings

LOGGER = logging.getLogger("tap_emailtracking.pinpointe")
VENDOR = "Pinpointe"
ENDPOINT_SETTING = "pinpointe.host"
CREDENTIALS_ACTION = (
    "check pinpointe.username and pinpointe.usertoken (Account Settings => API + Connectors), "
    "and that the API is enabled for the account"
)
WRONG_ANSWER_ACTION = (
    "check pinpointe.host: it must be the host you log in at (or your enterprise URL), not a "
    "proxy or login page; re-run later if Pinpointe is in maintenance (nothing was lost)"
)
STATUS_WORDS = {
    "waiting": JobState.PENDING,
    "queued": JobState.PENDING,
    "pending": JobState.PENDING,
    "processing": JobState.RUNNING,
    "running": JobState.RUNNING,
    "in progress": JobState.RUNNING,
    "inprogress": JobState.RUNNING,
    "started": JobState.RUNNING,
    "complete": JobState.DONE,
    "completed": JobState.DONE,
    "done": JobState.DONE,
    "finished": JobState.DONE,
    "success": JobState.DONE,
    "ready": JobState.DONE,
    "failed": JobState.FAILED,
    "error": JobState.FAILED,
    "cancelled": JobState.FAILED,
    "canceled": JobState.FAILED,
}
JOBS_NOT_FOUND = "jobs not found"
AUTH_WORDS = ("credential", "token", "username", "user name", "verify user", "not authori")
LIMIT_WORDS = ("too many", "limit")
_JOB_ID_KEY = re.compile(r"^job_?id$", re.IGNORECASE)
_LINK_KEY = re.compile(r"url|link|file|download|result", re.IGNORECASE)
_MESSAGE_KEYS = ("errormessage", "message", "error", "reason", "detail", "details")
_seen_shapes: set[str] = set()


def note_shape_once(what: str) -> None:
    """Log an unknown answer shape once per process (the docs leave it open: docs/pinpointe.md)."""
    if what not in _seen_shapes:
        _seen_shapes.add(what)
        LOGGER.warning("Pinpointe: %s; please report it with this line", what)


def find_job_id(value: object) -> str | None:
    """The first `job_?id` value at any depth, or a bare string/number `data`."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value).strip() or None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _JOB_ID_KEY.match(str(key)) and isinstance(item, str | int) and str(item).strip():
                return str(item).strip()
        for item in value.values():
            if isinstance(item, Mapping | list):
                found = find_job_id(item)
                if found:
                    return found
    if isinstance(value, list) and len(value) == 1:
        return find_job_id(value[0])
    return None


def find_link(record: Mapping[str, Any]) -> str | None:
    """The result link of a done status record: top level first, then one level down."""
    nested: list[Mapping[str, Any]] = []
    for key, value in record.items():
        if isinstance(value, Mapping):
            nested.append(value)
        elif isinstance(value, str) and _LINK_KEY.search(str(key)) and _looks_like_link(value):
            return value.strip()
    for inner in nested:
        for key, value in inner.items():
            named = _LINK_KEY.search(str(key))
            if isinstance(value, str) and named and _looks_like_link(value):
                return value.strip()
    return None


def _looks_like_link(value: str) -> bool:
    text = value.strip().lower()
    return text.startswith(("http://", "https://", "/"))


def error_words(answer: Mapping[str, Any]) -> str:
    """`errormessage` (a string or a list of strings) as one line."""
    message = answer.get("errormessage", answer.get("errorMessage", ""))
    if isinstance(message, list):
        message = "; ".join(str(part) for part in message if part not in (None, ""))
    return excerpt(str(message or "")) or "(no errormessage)"


def next_page(answer: Mapping[str, Any]) -> str | None:
    """The `next` of the answer's `pagination` (top level or in `data`); None: the last page."""
    data = answer.get("data")
    for holder in (answer, data if isinstance(data, Mapping) else {}):
        paging = holder.get("pagination")
        if isinstance(paging, Mapping):
            value = paging.get("next")
            text = "" if value is None else str(value).strip()
            return None if text in ("", "0") else text
    return None


def page_records(data: object) -> list[dict[str, Any]]:
    """The records of a listing answer: `data` itself, or the first list of objects inside it."""
    if data is None or data == "":
        return []
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    if isinstance(data, Mapping):
        for value in data.values():
            if isinstance(value, list) and (not value or isinstance(value[0], dict)):
                return [item for item in value if isinstance(item, dict)]
        for key in ("item", "items"):  # one record, not wrapped in a list (XML habits)
            if isinstance(data.get(key), dict):
                return [data[key]]
        if not data or set(data) <= {"pagination", "count", "total"}:
            return []
    raise ValueError("no list of records")


class JobsNotFoundError(VendorError):
    """AsyncJobStatus knows none of the ids asked about (they expired)."""


class PinpointeClient:
    """Speak the JSON API for one account."""

    def __init__(self, settings: PinpointeSettings, http: VendorHttp) -> None:
        self.settings = settings
        self.http = http

    def call(
        self,
        requesttype: str,
        method: str,
        details: Mapping[str, Any] | None,
        *,
        stream: str | None,
        what: str | None = None,
    ) -> dict[str, Any]:
        """POST one request and return the whole SUCCESS answer, or raise with Pinpointe's words.

        Empty `details` are left out, as Pinpointe asks for unused optional elements.
        """
        what = what or f"{requesttype}/{method}"
        body: dict[str, Any] = {
            "username": self.settings.username,
            "usertoken": self.settings.usertoken,
            "requesttype": requesttype,
            "requestmethod": method,
        }
        if details:
            body["details"] = dict(details)
        response = self.http.request(
            "POST",
            self.settings.api_url,
            json=body,
            headers={"Accept": "application/json"},
            what=what,
            stream=stream,
            action="check pinpointe.host and the network; re-run (nothing was lost)",
            endpoint_setting=ENDPOINT_SETTING,
        )
        call = ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION)
        answer = expect_json(response, call)
        if not isinstance(answer, dict) or "status" not in answer:
            raise wrong_shape(call, "JSON without a status", answer)
        status = str(answer.get("status", "")).strip().upper()
        if status == "SUCCESS" and response.status_code == 200:
            return answer
        words = error_words(answer)
        lowered = words.lower()
        if response.status_code in (401, 403) or any(w in lowered for w in AUTH_WORDS):
            raise AuthenticationError(
                f'{what} was refused (HTTP {response.status_code}): "{words}"',
                vendor=VENDOR,
                stream=stream,
                action=CREDENTIALS_ACTION,
            )
        if JOBS_NOT_FOUND in lowered:
            raise JobsNotFoundError(
                f'{what}: "{words}"',
                vendor=VENDOR,
                stream=stream,
                action="the jobs expired: they are submitted again once",
            )
        if "job" in lowered and any(w in lowered for w in LIMIT_WORDS):
            raise JobLimitReachedError(
                f'{what} was refused for now: "{words}"',
                vendor=VENDOR,
                stream=stream,
                action="the export is asked for again once one of this run's jobs finishes",
            )
        raise VendorError(
            f'{what} failed (status {status or "missing"}, HTTP {response.status_code}): "{words}"',
            vendor=VENDOR,
            stream=stream,
            action="fix what Pinpointe's message says, then re-run; nothing was emitted for this "
            "call and state was not advanced",
        )

    def pages(
        self,
        requesttype: str,
        method: str,
        details: Mapping[str, Any] | None = None,
        *,
        stream: str | None,
        page_size: int,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a listing call, asked `page_size` records at a time until `next` is 0."""
        start: str | None = None
        seen: set[str] = set()
        page = 0
        while True:
            page += 1
            paging = {"limit": str(page_size)} | ({} if start is None else {"next": start})
            what = f"{requesttype}/{method} page {page}"
            answer = self.call(
                requesttype,
                method,
                {**(details or {}), "pagination": paging},
                stream=stream,
                what=what,
            )
            try:
                records = page_records(answer.get("data"))
            except ValueError:
                raise wrong_shape(
                    ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION),
                    "data without a list of records",
                    answer.get("data"),
                ) from None
            yield records
            start = next_page(answer)
            if start is None:
                return
            if start in seen:
                raise VendorError(
                    f"{what} sent paging back to record {start}, which was already read",
                    vendor=VENDOR,
                    stream=stream,
                    action="re-run; if it repeats, report it to Pinpointe support",
                )
            seen.add(start)

    def submit(
        self, requesttype: str, method: str, details: Mapping[str, Any], *, stream: str | None
    ) -> Submission:
        """Start one async export; the job id from the answer's `data`."""
        what = f"{requesttype}/{method}"
        answer = self.call(requesttype, method, details, stream=stream)
        job_id = find_job_id(answer.get("data"))
        if not job_id:
            raise wrong_shape(
                ApiCall(VENDOR, what, stream, "re-run; if it repeats, report it to Pinpointe"),
                "SUCCESS without a job id",
                answer.get("data"),
            )
        return Submission(job_id)

    def statuses(self, job_ids: Sequence[str], *, stream: str | None) -> dict[str, JobStatus]:
        """AsyncJobStatus for many ids in one paged call; ids missing from the answer are gone."""
        wanted = set(job_ids)
        found: dict[str, JobStatus] = {}
        try:
            for records in self.pages(
                "API",
                "AsyncJobStatus",
                {"jobids": list(job_ids)},
                stream=stream,
                page_size=self.settings.status_page_size,
            ):
                for record in records:
                    job_id = find_job_id(record)
                    if job_id in wanted:
                        found[job_id] = job_status(record)
        except JobsNotFoundError:
            return {}  # none of them exists any more: every one is gone
        return found


def job_status(record: Mapping[str, Any]) -> JobStatus:
    """One AsyncJobStatus record as the shared lifecycle reads it."""
    raw = str(record.get("status", record.get("Status", "")) or "").strip()
    state = STATUS_WORDS.get(raw.lower(), JobState.UNKNOWN)
    if state is JobState.UNKNOWN:
        note_shape_once(f"AsyncJobStatus answered the unknown status word {raw!r}")
    message = next(
        (str(record[k]) for k in _MESSAGE_KEYS if isinstance(record.get(k), str) and record[k]),
        None,
    )
    progress = record.get("progress")
    if state is JobState.DONE:
        link = find_link(record)
        if link is None:
            return JobStatus(
                JobState.FAILED, raw, detail="the job is done but its status names no result link"
            )
        return JobStatus(state, raw, result=link)
    return JobStatus(
        state,
        raw or "(empty)",
        progress=None if progress is None else excerpt(str(progress)),
        detail=None if message is None else excerpt(message),
    )
