"""Acoustic's APIs: OAuth, the BEX job-definition REST resource, and the XML API.

Assumptions (see docs/acoustic.md): definitions are listed as a JSON array (or an object holding
one under `jobDefinitions`, `data` or `items`); a POST answers the new id as `jobId`, `id`,
`jobDefinitionId` or a bare value; REST errors are non-2xx statuses whose JSON may carry messages;
XML API faults arrive with HTTP 200 and `SUCCESS` false.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import xmltodict

from tap_emailtracking.errors import VendorError
from tap_emailtracking.transports.http import RetryPolicy, VendorHttp
from tap_emailtracking.transports.oauth import RefreshTokenAuth
from tap_emailtracking.vendors.acoustic.settings import AcousticSettings

LOGGER = logging.getLogger("tap_emailtracking.acoustic")
VENDOR = "Acoustic"
DEFINITIONS_PATH = "/rest/bulkeventexport/jobdefinition"


def _message(body: Any) -> str:
    """The human part of a REST error body, short."""
    if isinstance(body, Mapping):
        for key in ("errors", "error_description", "message", "error"):
            value = body.get(key)
            if isinstance(value, list):
                texts = [
                    str(v.get("message", v)) if isinstance(v, Mapping) else str(v) for v in value
                ]
                return "; ".join(texts)[:300]
            if value:
                return str(value)[:300]
    return str(body)[:300] if body else ""


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

    def __init__(self, settings: AcousticSettings) -> None:
        self.settings = settings
        self.http = VendorHttp(
            vendor=VENDOR,
            policy=RetryPolicy(
                max_attempts=settings.max_attempts,
                read_timeout_seconds=settings.request_timeout_seconds,
            ),
        )
        self.auth = RefreshTokenAuth(
            self.http,
            token_url=f"{settings.api_host}/oauth/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            config_key="acoustic",
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
            action="check acoustic.api_host and the network; re-run (nothing was lost)",
        )
        try:
            parsed: Any = response.json() if response.content else None
        except ValueError:
            parsed = response.text[:300]
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
        """Every BEX job definition the org admin can see."""
        body = self.rest("GET", DEFINITIONS_PATH, what="BEX job definition list", stream=stream)
        if isinstance(body, Mapping):
            for key in ("jobDefinitions", "data", "items"):
                if isinstance(body.get(key), list):
                    body = body[key]
                    break
            else:
                body = [body] if body.get("id") is not None else []
        return [item for item in body or [] if isinstance(item, dict)]

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
        elif body is not None and str(body).strip():
            return str(body).strip().strip('"')
        raise VendorError(
            "BEX job definition create answered without an id",
            vendor=VENDOR,
            stream=stream,
            action="check the definitions in Acoustic, then re-run without manage_job_definition",
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
        envelope = f"<Envelope><Body><{operation}>{inner}</{operation}></Body></Envelope>"
        response = self.auth.request(
            "POST",
            f"{self.settings.api_host}/XMLAPI",
            data={"xml": envelope},
            what=f"XML API {operation}",
            stream=stream,
            action="check acoustic.api_host and the network; re-run (nothing was lost)",
        )
        try:
            document: dict[str, Any] = xmltodict.parse(response.content, disable_entities=True)
        except (ExpatError, ValueError):
            document = {}
        success = find_first(document, "SUCCESS")
        if not response.ok or success is None or success.lower() != "true":
            fault = find_first(document, "FaultString") or f"HTTP {response.status_code}"
            error_id = find_first(document, "errorid")
            raise VendorError(
                f"XML API {operation} failed: {fault}"
                + (f" (errorid {error_id})" if error_id else ""),
                vendor=VENDOR,
                stream=stream,
                action="fix what the vendor's message says, then re-run; nothing of this "
                "window was emitted and state was not advanced",
            )
        return document


def xml_text(value: str) -> str:
    """Escape a value for an XML API request."""
    return escape(value)
