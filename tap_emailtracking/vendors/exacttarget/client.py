"""ExactTarget's legacy XML API: envelopes, Tracking BulkAsync, Batch Inquire, in-band errors.

Assumptions (see docs/exacttarget.md): calls are POSTed form-encoded (`qf=xml&xml=…`) so the
password in the envelope never lands in a URL; errors arrive with HTTP 200 as `<error>` and
`<error_description>` anywhere in the answer; batch statuses are matched case-insensitively and
`Complete`/`Completed` both mean done; a done batch without a file name is a failure. An
answer that is not the XML API's XML (a proxy's, login or maintenance page) is named as such,
quoting a short excerpt; vendor text is quoted through `redaction` (the tap registers every secret
setting at start), so an echoed password is masked in any spelling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import xmltodict

from tap_emailtracking.errors import AuthenticationError, JobLimitReachedError, VendorError
from tap_emailtracking.jobs import JobState, JobStatus
from tap_emailtracking.transports.http import (
    ApiCall,
    VendorHttp,
    excerpt,
    expect_xml,
    wrong_shape,
)
from tap_emailtracking.vendors.exacttarget.settings import ExactTargetSettings
from tap_emailtracking.windows import DateWindow

LOGGER = logging.getLogger("tap_emailtracking.exacttarget")
VENDOR = "ExactTarget"

STATUS_WORDS = {
    "scheduled": JobState.PENDING,
    "queued": JobState.PENDING,
    "processing": JobState.RUNNING,
    "inprogress": JobState.RUNNING,
    "in progress": JobState.RUNNING,
    "complete": JobState.DONE,
    "completed": JobState.DONE,
    "error": JobState.FAILED,
    "failed": JobState.FAILED,
    "canceled": JobState.FAILED,
    "cancelled": JobState.FAILED,
}
# [I] The vendor's error codes are not public; these words in a description mean a login problem.
AUTH_WORDS = ("password", "username", "user name", "login", "log in", "authenticat", "credential")
# [I] Error 7 answers a BulkAsync request while too many batches are scheduled or processing; the
# batch is requested again once one of this run's finishes.
JOB_LIMIT_ERROR = "7"
ENDPOINT_SETTING = "exacttarget.endpoint"
WRONG_ANSWER_ACTION = (
    "check exacttarget.endpoint: it must reach your instance's …/integrate.aspx, not a proxy or "
    "login page; re-run later if ExactTarget is in maintenance (nothing was lost)"
)


def et_date(day: date) -> str:
    """ExactTarget's M/D/YYYY without zero padding (11/1/2009)."""
    return f"{day.month}/{day.day}/{day.year}"


def _values(node: object, name: str) -> Iterator[str]:
    """Every text value of elements called `name`, anywhere in an xmltodict document."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == name:
                items = value if isinstance(value, list) else [value]
                for item in items:
                    text = item.get("#text") if isinstance(item, Mapping) else item
                    yield "" if text is None else str(text).strip()
            else:
                yield from _values(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item, name)


def first_value(document: object, *names: str) -> str | None:
    """The first text of an element with one of `names` (tried in order), or None."""
    for name in names:
        for value in _values(document, name):
            return value
    return None


def _range(tag: str, window: DateWindow) -> str:
    return (
        f"<{tag}><startdate>{et_date(window.start)}</startdate>"
        f"<enddate>{et_date(window.end)}</enddate></{tag}>"
    )


class ExactTargetClient:
    """Speak the XML API for one account."""

    def __init__(self, settings: ExactTargetSettings, http: VendorHttp) -> None:
        self.settings = settings
        self.http = http

    def call(self, system: str, *, what: str, stream: str | None) -> dict[str, Any]:
        """POST one request and return the parsed answer (xmltodict, entities refused), or raise."""
        envelope = (
            '<?xml version="1.0" ?><exacttarget><authorization>'
            f"<username>{escape(self.settings.username)}</username>"
            f"<password>{escape(self.settings.password)}</password>"
            f"</authorization><system>{system}</system></exacttarget>"
        )
        response = self.http.request(
            "POST",
            self.settings.endpoint,
            data={"qf": "xml", "xml": envelope},
            what=what,
            stream=stream,
            action="check exacttarget.endpoint and the network; re-run (nothing was lost)",
            endpoint_setting=ENDPOINT_SETTING,
        )
        answer = ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION)
        body = expect_xml(response, answer)
        if response.status_code != 200:
            raise VendorError(
                f"{what} answered HTTP {response.status_code}",
                vendor=VENDOR,
                stream=stream,
                action="check exacttarget.endpoint (it must be your instance's …/integrate.aspx)",
            )
        try:
            document: dict[str, Any] | None = xmltodict.parse(body, disable_entities=True)
        except (ExpatError, ValueError):
            document = None
        if not isinstance(document, dict) or "exacttarget" not in document:
            raise wrong_shape(
                answer, "something that is not the XML API's XML", body.decode("utf-8", "replace")
            )
        code = first_value(document, "error")
        if code is not None:
            description = excerpt(first_value(document, "error_description") or "")
            lowered = description.lower()
            if code == "2" or any(word in lowered for word in AUTH_WORDS):
                raise AuthenticationError(
                    f"{what} was refused: error {excerpt(code)}: {description}",
                    vendor=VENDOR,
                    stream=stream,
                    action="check exacttarget.username and exacttarget.password (XML API user)",
                )
            error = JobLimitReachedError if code == JOB_LIMIT_ERROR else VendorError
            raise error(
                f"{what} failed: ExactTarget error {excerpt(code)}: {description}",
                vendor=VENDOR,
                stream=stream,
                action="fix what the vendor's message says, then re-run; nothing was emitted "
                "for this window and state was not advanced",
            )
        return document

    def submit_tracking_export(
        self, activity: DateWindow, sends: DateWindow | None, *, stream: str | None
    ) -> str:
        """Start `tracking` / `BulkAsync` / `all_jobs_ToFTP`; return the batch id."""
        system = (
            "<system_name>tracking</system_name><action>BulkAsync</action>"
            "<sub_action>all_jobs_ToFTP</sub_action><search_type/>"
            + _range("daterange", activity)
            + (_range("jobdaterange", sends) if sends is not None else "")
        )
        answer = self.call(system, what="Tracking BulkAsync submit", stream=stream)
        batch_id = first_value(answer, "batchID", "batchid", "BatchID")
        if not batch_id:
            raise VendorError(
                "Tracking BulkAsync submit answered without a batchID",
                vendor=VENDOR,
                stream=stream,
                action="re-run; if it repeats, ask ExactTarget support whether BulkAsync is "
                "enabled for this user",
            )
        return batch_id

    def inquire(self, batch_id: str, *, stream: str | None) -> JobStatus:
        """Batch Inquire: the batch's status and, once complete, its file name."""
        system = (
            "<system_name>batch</system_name><action>inquire</action>"
            f"<search_type>batchid</search_type><search_value>{escape(batch_id)}</search_value>"
        )
        answer = self.call(system, what=f"Batch Inquire of batch {batch_id}", stream=stream)
        raw = first_value(answer, "status", "Status") or ""
        answered_id = first_value(answer, "batchid", "batchID")
        if answered_id not in (None, "", batch_id):
            LOGGER.warning(
                "ExactTarget: Batch Inquire of %s answered for batch %s", batch_id, answered_id
            )
        state = STATUS_WORDS.get(raw.lower(), JobState.UNKNOWN)
        filename = first_value(answer, "filename", "fileName") or ""
        if state is JobState.DONE and not filename:
            return JobStatus(
                JobState.FAILED, raw, detail="the batch is complete but names no result file"
            )
        return JobStatus(state, raw or "(empty)", result=filename or None)


class TrackingExportJob:
    """One activity window's BulkAsync batch, as the shared job lifecycle sees it."""

    def __init__(
        self,
        client: ExactTargetClient,
        activity: DateWindow,
        sends: DateWindow | None,
        *,
        stream: str | None,
    ) -> None:
        self.client = client
        self.activity = activity
        self.sends = sends
        self.stream = stream

    def submit(self) -> str:
        return self.client.submit_tracking_export(self.activity, self.sends, stream=self.stream)

    def check(self, job_id: str) -> JobStatus:
        return self.client.inquire(job_id, stream=self.stream)
