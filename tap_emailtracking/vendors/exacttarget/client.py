"""ExactTarget's legacy XML API: envelopes, Tracking BulkAsync, Batch Inquire, in-band errors.

Assumptions (see docs/exacttarget.md): calls are POSTed form-encoded (`qf=xml&xml=…`) so the
password in the envelope never lands in a URL; errors arrive with HTTP 200 as `<error>` and
`<error_description>` anywhere in the answer; batch statuses are matched case-insensitively and
`Complete`/`Completed` both mean done; a done batch without a file name is a failure.
"""

from __future__ import annotations

import logging
from datetime import date
from xml.etree.ElementTree import Element, ParseError, fromstring
from xml.sax.saxutils import escape

from tap_emailtracking.errors import AuthenticationError, VendorError
from tap_emailtracking.jobs import JobState, JobStatus
from tap_emailtracking.transports.http import VendorHttp
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
# [I] The vendor's list of error codes is not public; these words in a description mean a login problem.
AUTH_WORDS = ("password", "username", "user name", "login", "log in", "authenticat", "credential")


def et_date(day: date) -> str:
    """ExactTarget's M/D/YYYY without zero padding (11/1/2009)."""
    return f"{day.month}/{day.day}/{day.year}"


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

    def _scrub(self, text: str) -> str:
        """Remove credentials a vendor echoed back (seen in error descriptions)."""
        for secret in (self.settings.password, escape(self.settings.password)):
            if secret:
                text = text.replace(secret, "***")
        return text

    def call(self, system: str, *, what: str, stream: str | None) -> Element:
        """POST one request and return the parsed `<exacttarget>` answer, or raise."""
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
        )
        body = response.content
        if response.status_code != 200:
            raise VendorError(
                f"{what} answered HTTP {response.status_code}",
                vendor=VENDOR,
                stream=stream,
                action="check exacttarget.endpoint (it must be your instance's …/integrate.aspx)",
            )
        if b"<!DOCTYPE" in body[:1024].upper():
            root = None
        else:
            try:
                root = fromstring(body)
            except ParseError:
                root = None
        if root is None:
            excerpt = self._scrub(body[:200].decode("utf-8", "replace"))
            raise VendorError(
                f"{what} answered something that is not the XML API's XML: {excerpt!r}",
                vendor=VENDOR,
                stream=stream,
                action="check exacttarget.endpoint; re-run if the vendor had an outage",
            )
        error = root.find(".//error")
        if error is not None:
            code = (error.text or "").strip()
            description_el = root.find(".//error_description")
            description = self._scrub(
                ((description_el.text or "") if description_el is not None else "").strip()
            )
            lowered = description.lower()
            if code == "2" or any(word in lowered for word in AUTH_WORDS):
                raise AuthenticationError(
                    f"{what} was refused: error {code}: {description}",
                    vendor=VENDOR,
                    stream=stream,
                    action="check exacttarget.username and exacttarget.password (XML API user)",
                )
            raise VendorError(
                f"{what} failed: ExactTarget error {code}: {description}",
                vendor=VENDOR,
                stream=stream,
                action="fix what the vendor's message says, then re-run; nothing was emitted "
                "for this window and state was not advanced",
            )
        return root

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
        root = self.call(system, what="Tracking BulkAsync submit", stream=stream)
        batch = root.find(".//batchID")
        if batch is None:
            batch = root.find(".//batchid")
        batch_id = (batch.text or "").strip() if batch is not None else ""
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
        root = self.call(system, what=f"Batch Inquire of batch {batch_id}", stream=stream)
        status_el = root.find(".//status")
        raw = (status_el.text or "").strip() if status_el is not None else ""
        answered_id = root.find(".//batchid")
        if answered_id is not None and (answered_id.text or "").strip() not in ("", batch_id):
            LOGGER.warning(
                "ExactTarget: Batch Inquire of %s answered for batch %s",
                batch_id,
                (answered_id.text or "").strip(),
            )
        state = STATUS_WORDS.get(raw.lower(), JobState.UNKNOWN)
        filename_el = root.find(".//filename")
        filename = (filename_el.text or "").strip() if filename_el is not None else ""
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
