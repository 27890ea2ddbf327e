"""Acoustic's APIs: OAuth, the BEX job-definition REST resource, and the XML API.

Assumptions (see docs/acoustic.md): definitions are listed as a JSON array (or an object holding
one under `jobDefinitions`, `data` or `items`); a POST answers the new id as `jobId`, `id`,
`jobDefinitionId` or a bare value; REST errors are non-2xx statuses whose JSON may carry messages;
XML API faults arrive with HTTP 200 and `SUCCESS` false. Every answer is checked for its kind
(JSON or XML, not a proxy's HTML page) and shape before it is read, so a misread answer never
leads to a write (a definition created because a login page listed none).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import xmltodict

from tap_emailtracking.errors import JobLimitReachedError, VendorError
from tap_emailtracking.transports.http import (
    ApiCall,
    VendorHttp,
    excerpt,
    expect_json,
    expect_xml,
    wrong_shape,
)
from tap_emailtracking.transports.oauth import RefreshTokenAuth
from tap_emailtracking.vendors.acoustic.settings import AcousticSettings

LOGGER = logging.getLogger("tap_emailtracking.acoustic")
VENDOR = "Acoustic"
DEFINITIONS_PATH = "/rest/bulkeventexport/jobdefinition"
ENDPOINT_SETTING = "acoustic.api_host (or acoustic.pod)"
NETWORK_ACTION = f"check {ENDPOINT_SETTING} and the network; re-run (nothing was lost)"
WRONG_ANSWER_ACTION = (
    f"check {ENDPOINT_SETTING}: it must reach the Acoustic API, not a proxy or login page; "
    "re-run later if Acoustic is in maintenance (nothing was created or changed)"
)
# [I] "Unable to create the export job": the docs give the code, not its cause; read as the
# account's export jobs being at their limit, so the job is submitted again when one finishes.
JOB_LIMIT_ERRORID = "156"
LIST_KEYS = ("jobDefinitions", "data", "items")


def _message(body: Any) -> str:
    """The human part of a REST error body, short."""
    if isinstance(body, Mapping):
        for key in ("errors", "error_description", "message", "error"):
            value = body.get(key)
            if isinstance(value, list):
                texts = [
                    str(v.get("message", v)) if isinstance(v, Mapping) else str(v) for v in value
                ]
                return excerpt("; ".join(texts))
            if value:
                return excerpt(str(value))
    return excerpt(json.dumps(body)) if body else ""


def find_first(node: Any, name: str) -> str | None:
    """The text of the first element called `name` (case-insensitive), anywhere."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if str(key).lower() == name.lower():
                item = value[0] if isinstance(value, list) else value
                text = item.get("#text") if isinstance(item, Mapping) else item
                return None if text is None else str(text).strip()
            found = find_first(value, name)
            if found is not None:
                return found
    elif isinstance(node, list):
        for item in node:
            found = find_first(item, name)
            if found is not None:
                return found
    return None


class AcousticClient:
    """OAuth-authenticated calls to one org's REST and XML APIs."""

    def __init__(
        self, settings: AcousticSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.http = VendorHttp(
            vendor=VENDOR,
            policy=settings.http_policy(),
            sleep=sleep,
        )
        self.auth = RefreshTokenAuth(
            self.http,
            token_url=f"{settings.api_host}/oauth/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            endpoint_setting=ENDPOINT_SETTING,
            refused_action="create a new refresh token (Application Account Access) and set "
            "acoustic.refresh_token; check acoustic.client_id, client_secret and that "
            f"{ENDPOINT_SETTING} is the account's",
            forbidden_action="check that the user of acoustic.refresh_token may use this API "
            "(BEX needs the organization admin)",
        )

    def close(self) -> None:
        """Release connections."""
        self.http.close()

    # -- REST ---------------------------------------------------------------------------------

    def rest(
        self,
        method: str,
        path: str,
        *,
        what: str,
        stream: str | None,
        body: Any = None,
    ) -> Any:
        """Call a REST resource; a non-2xx answer is a `VendorError` with the vendor's message."""
        response = self.auth.request(
            method,
            f"{self.settings.api_host}{path}",
            json=body,
            headers={"Accept": "application/json"},
            what=what,
            stream=stream,
            action=NETWORK_ACTION,
        )
        parsed = expect_json(
            response, ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION), allow_empty=True
        )
        if not response.ok:
            raise VendorError(
                f"{what} answered HTTP {response.status_code}: {_message(parsed)}",
                vendor=VENDOR,
                stream=stream,
                action="check the BEX settings (contact_source_id, ftp_user_id, event and "
                "mailing types) and that BEX is enabled for the org; nothing was emitted",
            )
        return parsed

    def list_definitions(self, *, stream: str | None) -> list[dict[str, Any]]:
        """Every BEX job definition the org admin can see; an answer of another shape stops here.

        A JSON array, an object holding one under a known key, or one definition (with an id).
        Anything else is named, never read as "no definitions" (which would lead to a POST).
        """
        what = "BEX job definition list"
        body = self.rest("GET", DEFINITIONS_PATH, what=what, stream=stream)
        items: Any = body
        if isinstance(body, Mapping):
            found = [body[key] for key in LIST_KEYS if isinstance(body.get(key), list)]
            items = found[0] if found else [body] if body.get("id") is not None else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise wrong_shape(
                ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION),
                "JSON of an unexpected shape (not a list of job definitions, nor an object "
                f"holding one under {', '.join(LIST_KEYS)})",
                body,
            )
        return items

    def create_definition(self, definition: dict[str, Any], *, stream: str | None) -> str:
        """POST a definition; return its id."""
        body = self.rest(
            "POST",
            DEFINITIONS_PATH,
            what="BEX job definition create",
            stream=stream,
            body=definition,
        )
        if isinstance(body, Mapping):
            for key in ("jobId", "id", "jobDefinitionId"):
                if body.get(key) is not None:
                    return str(body[key])
        elif isinstance(body, str | int) and str(body).strip():
            return str(body).strip().strip('"')
        raise wrong_shape(
            ApiCall(
                VENDOR,
                "BEX job definition create",
                stream,
                "check the definitions in Acoustic, then re-run without manage_job_definition",
            ),
            "without a definition id",
            body,
        )

    def update_definition(
        self, definition_id: str, definition: dict[str, Any], *, stream: str | None
    ) -> None:
        """PUT a definition (the id goes in the body too, as the vendor page says)."""
        self.rest(
            "PUT",
            f"{DEFINITIONS_PATH}/{definition_id}",
            what=f"BEX job definition {definition_id} update",
            stream=stream,
            body={**definition, "id": definition_id},
        )

    # -- XML API ------------------------------------------------------------------------------

    def xml_call(self, operation: str, inner: str, *, stream: str | None) -> dict[str, Any]:
        """POST one XML API operation; a `SUCCESS` other than true is a `VendorError`."""
        what = f"XML API {operation}"
        envelope = f"<Envelope><Body><{operation}>{inner}</{operation}></Body></Envelope>"
        response = self.auth.request(
            "POST",
            f"{self.settings.api_host}/XMLAPI",
            data={"xml": envelope},
            what=what,
            stream=stream,
            action=NETWORK_ACTION,
        )
        answer = ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION)
        content = expect_xml(response, answer)
        text = content.decode("utf-8", "replace")
        try:
            document: Any = xmltodict.parse(content, disable_entities=True)
        except (ExpatError, ValueError):
            raise wrong_shape(answer, "XML that cannot be read", text) from None
        if not isinstance(document, dict) or "Envelope" not in document:
            raise wrong_shape(answer, "XML that is not an XML API Envelope", text)
        success = find_first(document, "SUCCESS")
        if not response.ok or success is None or success.lower() != "true":
            fault = find_first(document, "FaultString") or f"HTTP {response.status_code}"
            error_id = find_first(document, "errorid")
            error = JobLimitReachedError if error_id == JOB_LIMIT_ERRORID else VendorError
            raise error(
                f"{what} failed: {excerpt(fault)}"
                + (f" (errorid {excerpt(error_id)})" if error_id else ""),
                vendor=VENDOR,
                stream=stream,
                action="fix what the vendor's message says, then re-run; nothing of this "
                "window was emitted and state was not advanced",
            )
        return document


def xml_text(value: str) -> str:
    """Escape a value for an XML API request."""
    return escape(value)
