"""Acoustic's BEX job definitions over REST: ``/rest/bulkeventexport/jobdefinition[/<id>]``.

GET (array / one), POST (-> ``{"jobId": N}``, ids from 5001), PUT (the body repeats the id;
-> the stored definition), DELETE (-> ``{"jobId": N}``).  Bad bodies: 400 (missing field, not
JSON), 404 (unknown database or definition), 409 (the database already has a definition), 422
(invalid value), each ``{"errors": [{"message": ...}, ...]}``.  Definitions live in this object;
creating or updating one rotates the BEX files up to ``auto_rotate_until`` when it is set.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from typing_extensions import override
from werkzeug.wrappers import Request, Response

from vendor_sandbox.acoustic.base import MAX_BODY_BYTES, AcousticState, json_response
from vendor_sandbox.acoustic.data import (
    DEFAULT_EXPORT_FILE_NAME,
    EVENT_TYPES,
    FILE_FORMATS,
    MAILING_TYPES,
)

FIRST_DEFINITION_ID = 5001
FREQUENCIES = (1, 2, 3, 4, 6, 8, 12, 24)
MAX_COLUMNS = 5
DEFINITIONS_PATH = "/rest/bulkeventexport/jobdefinition"


class _RestError(Exception):
    def __init__(self, status: int, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.status = status
        self.messages = messages


class DefinitionsPart(AcousticState):
    """The org's BEX job definitions (one per database)."""

    def _init_definitions(self, *, auto_rotate_until: datetime | None) -> None:
        self.auto_rotate_until = auto_rotate_until
        self.definition_posts = 0
        self.definition_puts = 0
        self.definition_deletes = 0
        self._definitions: dict[int, dict[str, Any]] = {}
        self._next_definition_id = FIRST_DEFINITION_ID

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """Stored definitions (copies), by id."""
        with self._lock:
            return [json.loads(json.dumps(d)) for _, d in sorted(self._definitions.items())]

    @override
    def definition_for(self, contact_source_id: str | None = None) -> dict[str, Any] | None:
        """The definition of a database (default: the dataset's), or None."""
        wanted = contact_source_id or self.dataset.spec.contact_source_id
        with self._lock:
            for definition in self._definitions.values():
                if str(definition["contactSourceId"]) == wanted:
                    return definition
        return None

    def create_definition(self, body: dict[str, Any]) -> int:
        """Store a definition as POST would (same validation, counters untouched); its id.

        Raises ``ValueError`` with the vendor's messages when POST would refuse it.
        """
        try:
            return self._post_definition(body)
        except _RestError as exc:
            raise ValueError(f"HTTP {exc.status}: {'; '.join(exc.messages)}") from None

    def _rest(self, request: Request, path: str) -> tuple[Response, str, str]:
        rest = path.rstrip("/")[len(DEFINITIONS_PATH) :].strip("/")
        method = request.method
        operation = f"{method} jobdefinition" + ("/<id>" if rest else "")
        if not self._authorized(request):
            response = json_response(
                {"error": "invalid_token", "error_description": "Access token expired or invalid"},
                401,
            )
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response, "rest", operation
        try:
            with self._lock:
                return self._rest_call(request, method, rest), "rest", operation
        except _RestError as exc:
            body = {"errors": [{"message": m} for m in exc.messages]}
            return json_response(body, exc.status), "rest", operation

    def _rest_call(self, request: Request, method: str, rest: str) -> Response:
        if rest and not rest.isdigit():
            raise _RestError(404, [f"Job definition {rest} not found"])
        definition_id = int(rest) if rest else None
        if method == "GET":
            if definition_id is None:
                odd = self.faults.definition_list_answer
                return json_response(self.definitions if odd is None else odd, 200)
            return json_response(self._stored(definition_id), 200)
        if method == "POST":
            if definition_id is not None:
                raise _RestError(405, ["POST creates a definition: leave the id out of the URL"])
            new_id = self._post_definition(_body(request))
            self.definition_posts += 1
            return json_response({"jobId": new_id}, 200)
        if method == "PUT":
            if definition_id is None:
                raise _RestError(405, ["PUT needs the definition id in the URL"])
            stored = self._put_definition(definition_id, _body(request))
            self.definition_puts += 1
            return json_response(stored, 200)
        if method == "DELETE":
            if definition_id is None:
                raise _RestError(405, ["DELETE needs the definition id in the URL"])
            self._stored(definition_id)
            del self._definitions[definition_id]
            self.definition_deletes += 1
            return json_response({"jobId": definition_id}, 200)
        raise _RestError(405, [f"Method {method} is not allowed"])

    def _stored(self, definition_id: int) -> dict[str, Any]:
        stored = self._definitions.get(definition_id)
        if stored is None:
            raise _RestError(404, [f"Job definition {definition_id} not found"])
        return stored

    def _post_definition(self, body: Any) -> int:
        with self._lock:
            if isinstance(body, dict) and body.get("id") is not None:
                raise _RestError(400, ["id must not be set when creating a job definition"])
            definition = self._validate(body)
            source = str(definition["contactSourceId"])
            if self.definition_for(source) is not None:
                raise _RestError(
                    409, [f"A job definition already exists for contactSourceId {source}"]
                )
            new_id = self._next_definition_id
            self._next_definition_id += 1
            self._definitions[new_id] = {"id": new_id, **definition}
            if self.auto_rotate_until is not None:
                self.rotate_bex_files(self.auto_rotate_until)
            return new_id

    def _put_definition(self, definition_id: int, body: Any) -> dict[str, Any]:
        current = self._stored(definition_id)
        if not isinstance(body, dict) or body.get("id") is None:
            raise _RestError(400, ["id is required in the body of a PUT"])
        if str(body["id"]) != str(definition_id):
            raise _RestError(
                400, [f"id {body['id']} in the body differs from {definition_id} in the URL"]
            )
        definition = self._validate({k: v for k, v in body.items() if k != "id"})
        if str(definition["contactSourceId"]) != str(current["contactSourceId"]):
            raise _RestError(
                404,
                [
                    f"No job definition exists for contactSourceId "
                    f"{definition['contactSourceId']} with id {definition_id}"
                ],
            )
        self._definitions[definition_id] = {"id": definition_id, **definition}
        if self.auto_rotate_until is not None:
            self.rotate_bex_files(self.auto_rotate_until)
        return self._definitions[definition_id]

    def _validate(self, body: Any) -> dict[str, Any]:
        """The definition to store (defaults filled), or ``_RestError`` with every problem."""
        if not isinstance(body, dict):
            raise _RestError(400, ["The body must be a JSON object"])
        missing: list[str] = []
        invalid: list[str] = []
        source = body.get("contactSourceId")
        if source is None or str(source).strip() == "":
            missing.append("contactSourceId is required")
        ftp_user = body.get("ftpUserId")
        if not isinstance(ftp_user, str) or not ftp_user.strip():
            missing.append("ftpUserId is required")
        elif ftp_user.strip().lower() != self.ftp_user_id.lower():
            invalid.append(f"ftpUserId {ftp_user} is not the organization admin's login")
        channels = body.get("channels")
        out_channels: list[dict[str, Any]] = []
        if not isinstance(channels, list) or not channels:
            missing.append("channels is required (one Email channel)")
        else:
            if len(channels) > 1:
                invalid.append("Only one channel (Email) is supported")
            for channel in channels:
                out_channels.append(_validate_channel(channel, missing, invalid))
        if missing:
            raise _RestError(400, missing + invalid)
        if invalid:
            raise _RestError(422, invalid)
        if str(source) != self.dataset.spec.contact_source_id:
            raise _RestError(404, [f"Database {source} not found"])
        return {"contactSourceId": source, "ftpUserId": ftp_user, "channels": out_channels}


def _validate_channel(channel: Any, missing: list[str], invalid: list[str]) -> dict[str, Any]:
    if not isinstance(channel, dict):
        invalid.append("Each channel must be a JSON object")
        return {}
    out = dict(channel)
    kind = channel.get("type")
    if kind is None:
        missing.append("channels[].type is required")
    elif str(kind).lower() != "email":
        invalid.append(f"Channel type {kind} is not supported (only Email)")
    frequency = channel.get("jobFrequency")
    if frequency is None:
        missing.append("jobFrequency is required")
    elif not str(frequency).strip().isdigit() or int(str(frequency)) not in FREQUENCIES:
        invalid.append(f"jobFrequency {frequency} is invalid: valid values are 1,2,3,4,6,8,12,24")
    else:
        out["jobFrequency"] = int(str(frequency))
    name = channel.get("exportFileName")
    if name is None or name == "":
        out["exportFileName"] = DEFAULT_EXPORT_FILE_NAME
    elif not isinstance(name, str) or any(c in name for c in "/\\\x00"):
        invalid.append(f"exportFileName {name!r} is invalid")
    fmt = channel.get("exportFileFormat")
    if fmt is None or fmt == "":
        out["exportFileFormat"] = "CSV"
    elif str(fmt).upper() not in FILE_FORMATS:
        invalid.append(f"exportFileFormat {fmt} is invalid: CSV, PSV or TSV")
    else:
        out["exportFileFormat"] = str(fmt).upper()
    for key, item_key, allowed in (
        ("eventTypes", "eventType", EVENT_TYPES),
        ("mailingTypes", "mailingType", MAILING_TYPES),
    ):
        items = channel.get(key)
        if items is None:
            out[key] = []
            continue
        if not isinstance(items, list):
            invalid.append(f"{key} must be a list")
            continue
        for item in items:
            value = item.get(item_key) if isinstance(item, dict) else None
            if value not in allowed:
                invalid.append(
                    f"{item_key} {value} is not supported: valid values are {', '.join(allowed)}"
                )
    columns = channel.get("columnNames")
    if columns is None:
        out["columnNames"] = []
    elif not isinstance(columns, list):
        invalid.append("columnNames must be a list")
    else:
        if len(columns) > MAX_COLUMNS:
            invalid.append(f"At most {MAX_COLUMNS} columnNames can be requested")
        orders: list[int] = []
        names: list[str] = []
        for column in columns:
            if not isinstance(column, dict) or not str(column.get("columnName") or "").strip():
                missing.append("columnNames[].columnName is required")
                continue
            names.append(str(column["columnName"]))
            order = column.get("columnOrder")
            if order is None:
                missing.append(f"columnOrder is required for column {column['columnName']}")
            elif not str(order).strip().isdigit() or not 0 <= int(str(order)) < MAX_COLUMNS:
                invalid.append(f"columnOrder {order} is invalid: 0 to {MAX_COLUMNS - 1}")
            else:
                orders.append(int(str(order)))
        if len(set(orders)) != len(orders):
            invalid.append("columnOrder values must be distinct")
        if len(set(names)) != len(names):
            invalid.append("columnName values must be distinct")
        if len(orders) == len(columns) and len(set(orders)) == len(orders):
            out["columnNames"] = sorted(
                ({**c, "columnOrder": int(str(c["columnOrder"]))} for c in columns),
                key=lambda c: c["columnOrder"],
            )
    return out


def _body(request: Request) -> Any:
    data = request.get_data(cache=False)
    if len(data) > MAX_BODY_BYTES:
        raise _RestError(400, ["The body is too large"])
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _RestError(400, ["The body is not valid JSON"]) from None
