"""Mailkit's JSON API: the envelope, its in-band errors, and nothing else.

Assumptions (docs/mailkit.md): success is a JSON array of rows; an error is a JSON object with a
non-zero `error_status` and an `error` text, whatever the HTTP status. No object is ever read as
an empty page (a peer's bug that ended syncs early and silently), not even `{}`.
"Unauthorized" and "Disallowed IP …" get messages saying what to fix in the Mailkit profile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from tap_emailtracking.errors import AuthenticationError, VendorError
from tap_emailtracking.transports.http import (
    ApiCall,
    VendorHttp,
    answer_head,
    excerpt,
    expect_json,
    wrong_shape,
)
from tap_emailtracking.vendors.mailkit.settings import MailkitSettings

LOGGER = logging.getLogger("tap_emailtracking.mailkit")
VENDOR = "Mailkit"
ENDPOINT_SETTING = "mailkit.endpoint"
WRONG_ANSWER_ACTION = (
    "check mailkit.endpoint (the JSON API is …/json.fcgi); re-run later if Mailkit is in "
    "maintenance (nothing was lost: state was not advanced)"
)


class MailkitClient:
    """Speak the JSON API for one account."""

    def __init__(self, settings: MailkitSettings, http: VendorHttp) -> None:
        self.settings = settings
        self.http = http

    def call(
        self,
        function: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        stream: str | None,
        what: str | None = None,
        top_level: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """POST one call and return its rows, or raise with Mailkit's words.

        `top_level` members sit beside `parameters` (campaigns.list takes `ID_message` there).
        """
        what = what or function
        rows = self._rows(function, parameters, stream, what, top_level)
        if not all(isinstance(row, dict) for row in rows):
            call = ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION)
            raise wrong_shape(call, "a list holding something that is not a row", rows)
        return list(rows)

    def raw_rows(
        self, function: str, parameters: Mapping[str, Any], *, stream: str | None, what: str
    ) -> list[msgspec.Raw]:
        """One page of a raw function, each row still JSON (decoded one at a time by the
        caller, so a page of 25,000 wide rows never sits in memory as Python objects)."""
        rows: list[msgspec.Raw] = self._rows(function, parameters, stream, what, None, raw=True)
        return rows

    def _rows(
        self,
        function: str,
        parameters: Mapping[str, Any] | None,
        stream: str | None,
        what: str,
        top_level: Mapping[str, Any] | None,
        *,
        raw: bool = False,
    ) -> Any:
        body: dict[str, Any] = {
            "function": function,
            "id": self.settings.client_id,
            "md5": self.settings.client_md5,
            **(top_level or {}),
        }
        if parameters:
            body["parameters"] = {k: str(v) for k, v in parameters.items()}
        response = self.http.request(
            "POST",
            self.settings.endpoint,
            json=body,
            headers={"Accept": "application/json"},
            what=what,
            stream=stream,
            action="check mailkit.endpoint and the network; re-run (state was not advanced)",
            endpoint_setting=ENDPOINT_SETTING,
            body_in_place=raw,
        )
        call = ApiCall(VENDOR, what, stream, WRONG_ANSWER_ACTION)
        rows: Any = None
        if answer_head(response.content).startswith(b"["):
            try:
                rows = msgspec.json.decode(response.content, type=list[msgspec.Raw])
            except msgspec.DecodeError:
                rows = None  # not JSON after all: named below
        if rows is None:
            answer = expect_json(response, call)
            if isinstance(answer, dict):
                self._raise_error(answer, call, response.status_code)
            if not isinstance(answer, list):
                raise wrong_shape(call, "JSON that is not a list of rows", answer)
            rows = [msgspec.Raw(msgspec.json.encode(row)) for row in answer] if raw else answer
        elif not raw:
            rows = [msgspec.json.decode(row) for row in rows]
        if response.status_code != 200:
            raise call.error(f"{what} answered HTTP {response.status_code} with rows")
        return rows

    def _raise_error(self, answer: dict[str, Any], call: ApiCall, status: int) -> None:
        """An object is never rows: Mailkit's error (`error_status`, `error`), or a wrong shape.

        Even `{}` or a zero `error_status` is refused rather than read as "no more rows": an
        error must never look like the end of the data.
        """
        code = answer.get("error_status")
        if code is None or str(code).strip() in ("", "0"):
            raise wrong_shape(call, "an object where a list of rows was expected", answer)
        words = excerpt(str(answer.get("error") or "(no error text)"))
        lowered = words.lower()
        if "unauthori" in lowered:
            raise AuthenticationError(
                f'{call.what} was refused: "{words}" (error_status {code})',
                vendor=VENDOR,
                stream=call.stream,
                action="check mailkit.client_id and mailkit.client_md5: the API ID and MD5 code "
                "in Mailkit's Profile / Integration / API settings",
            )
        if "disallowed ip" in lowered:
            raise AuthenticationError(
                f'{call.what} was refused: "{words}" (error_status {code})',
                vendor=VENDOR,
                stream=call.stream,
                action="add this machine's public address to Mailkit's Profile / Integration / "
                "Allowed IP addresses",
            )
        raise VendorError(
            f'{call.what} failed: "{words}" (error_status {code}, HTTP {status})',
            vendor=VENDOR,
            stream=call.stream,
            action="fix what Mailkit's message says, then re-run; state was not advanced past "
            "the rows already emitted",
        )
