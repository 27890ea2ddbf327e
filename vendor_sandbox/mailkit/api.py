"""Mailkit's JSON API (``<prefix>/json.fcgi``, prefix ``/mailkit`` by default) as a WSGI app.

The protocol as served (``docs/mailkit.md``; [I] marks the sandbox's choices where the doc is
silent):

* Every call is a ``POST`` of one JSON object ``{"function", "id", "md5", "parameters"}``.
  Another method answers HTTP 405, another path 404 (plain text) [I]. Answers are HTTP 200:
  success a JSON array of row objects (``[]`` when none), an error a JSON object
  ``{"error_status": N, "error": "..."}``.
* Errors: a body that is not a JSON object, or ``parameters`` that is not an object:
  ``{"error_status": 2, "error": "Invalid request"}`` [I]; no or an unknown ``function``:
  ``2, "Unknown function <name>"`` [I]; the caller's IP refused (fault switch):
  ``1, "Disallowed IP <address>"``, checked before the credentials [I]; a wrong ``id`` or
  ``md5``: ``1, "Unauthorized"``; a parameter that is not a whole number (string or JSON
  number) where one is expected: ``2, "Invalid <name>"`` [I]; ``mailkit.report.campaign``
  without ``ID_message``: ``2, "Missing ID_message"``; a bad ``range_from``/``range_to``:
  ``2, "Invalid range_from"`` [I].
* Raw functions ``mailkit.report.raw.bounces`` / ``.messages`` / ``.responses``: start id
  ``ID_undelivered_log`` / ``ID_send_message`` / ``ID_log`` (inclusive; absent: from the first
  row), ``limit`` (default 25,000, larger values capped at 25,000, below 1 an error [I]),
  filters ``ID_message`` and ``ID_send`` (an id that names no campaign or send, or a send of
  another campaign, answers ``[]`` [I]). Rows in ascending id order. Parameter names are
  matched exactly as the doc spells them; other parameters are ignored [I], except
  ``ID_send_message`` on raw.responses, which the real API documents as a filter and the
  sandbox refuses (``2, "ID_send_message filter is not supported by the sandbox"``) rather
  than ignore it.
* ``mailkit.campaigns.list``: the optional ``ID_message`` is read at the top level only (inside
  ``parameters`` it is ignored [I]); an unknown or malformed one answers ``[]``.
* ``mailkit.report.campaign``: ``parameters.ID_message`` required (an unknown one answers
  ``[]`` [I]); ``range_from``/``range_to`` (``YYYY-MM-DD``, inclusive, compared with the local
  day of the send's ``DATE``) default to the three months before ``today`` (a constructor
  parameter, default ``dataset.data_end``): ``range_from`` the same day three months earlier
  (clamped to the month's end), ``range_to`` ``today`` [I].
* Row values and letter case: see :mod:`vendor_sandbox.mailkit.data`.

Every request is logged in ``requests`` (never the md5; a parameter named like ``md5`` is
masked): ``{"call": n-th call of that function, "function", "id", "parameters", "ID_message"
(top level, or None), "time"/"finished" (the api's clock), "in_flight" (requests being served
when it arrived, itself included), "status" (HTTP), "error" (error text, or the fault that
answered), "rows" (rows answered, or None)}``. ``max_in_flight`` is the most requests ever
served at once. Faults: :class:`~vendor_sandbox.mailkit.faults.MailkitFaults` on ``faults``.
"""

from __future__ import annotations

import copy
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from werkzeug.wrappers import Request, Response

from vendor_sandbox.mailkit.data import (
    FUNCTIONS,
    ID_KEYS,
    RESPONSES,
    MailkitDataset,
    as_int,
)
from vendor_sandbox.mailkit.faults import Growth, MailkitFaults

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["CAMPAIGNS_LIST", "MAX_LIMIT", "REPORT_CAMPAIGN", "MailkitApi"]

CAMPAIGNS_LIST = "mailkit.campaigns.list"
REPORT_CAMPAIGN = "mailkit.report.campaign"
MAX_LIMIT = 25_000
MAX_BODY_BYTES = 1_000_000
_KNOWN = (*FUNCTIONS, CAMPAIGNS_LIST, REPORT_CAMPAIGN)
_HTML = (
    "<!DOCTYPE html><html><head><title>Mailkit - údržba</title></head><body>"
    "<h1>Probíhá údržba systému</h1><p>Zkuste to prosím později.</p></body></html>"
)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MailkitApi:
    """WSGI app of Mailkit's JSON API backed by a :class:`MailkitDataset`.

    Switches: ``faults`` (:class:`MailkitFaults`). Counters: ``requests`` (the call log, see
    the module docstring), ``max_in_flight``; ``calls(function)`` lists one function's calls.
    """

    def __init__(
        self,
        dataset: MailkitDataset,
        *,
        client_id: str,
        client_md5: str,
        prefix: str = "/mailkit",
        today: date | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dataset = dataset
        self.client_id = client_id
        self.client_md5 = client_md5
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.today = today or dataset.data_end
        self.clock = clock
        self.faults = MailkitFaults()
        self.requests: list[dict[str, Any]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._counts: dict[str, int] = {}
        self._raw_calls = 0
        self._grown: set[Growth] = set()
        self._lock = threading.RLock()

    @property
    def endpoint_path(self) -> str:
        return self.prefix + "/json.fcgi"

    def calls(self, function: str) -> list[dict[str, Any]]:
        """Logged calls of one function, oldest first."""
        return [r for r in self.requests if r["function"] == function]

    # ----------------------------------------------------------------------------- WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.rstrip("/") != self.endpoint_path:
            return _plain(404, "Not Found")(environ, start_response)
        if request.method != "POST":
            return _plain(405, "Method Not Allowed")(environ, start_response)
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            entry: dict[str, Any] = {"time": self.clock(), "in_flight": self._in_flight}
        try:
            response = self._serve(request, environ, entry)
        finally:
            with self._lock:
                self._in_flight -= 1
                entry["finished"] = self.clock()
                entry["status"] = response.status_code
                self.requests.append(entry)
        return response(environ, start_response)

    def _serve(self, request: Request, environ: WSGIEnvironment, entry: dict[str, Any]) -> Response:
        body = _parse(request)
        function = body.get("function") if isinstance(body, dict) else None
        function = function if isinstance(function, str) else None
        parameters = body.get("parameters") if isinstance(body, dict) else None
        with self._lock:
            n = self._counts[str(function)] = self._counts.get(str(function), 0) + 1
            if function in FUNCTIONS:
                self._raw_calls += 1
        entry.update(
            call=n,
            function=function,
            id=body.get("id") if isinstance(body, dict) else None,
            parameters=_masked(parameters),
            ID_message=body.get("ID_message") if isinstance(body, dict) else None,
            error=None,
            rows=None,
        )
        faults = self.faults
        try:
            with self._lock:
                http_error = faults.http_errors.pop(0) if faults.http_errors else None
            if http_error is not None:
                entry["error"] = f"http {http_error}"
                return _http_error(http_error, faults.retry_after)
            if function is not None and faults.html_on.get(function) == n:
                entry["error"] = "html page"
                return Response(_HTML, status=faults.html_status, content_type="text/html")
            if not isinstance(body, dict) or (
                parameters is not None and not isinstance(parameters, dict)
            ):
                raise _ApiError(2, "Invalid request")
            if faults.disallowed_ip:
                raise _ApiError(1, f"Disallowed IP {request.remote_addr}")
            if (
                faults.unauthorized
                or str(body.get("id", "")) != self.client_id
                or str(body.get("md5", "")) != self.client_md5
            ):
                raise _ApiError(1, "Unauthorized")
            if function is None or function not in _KNOWN:
                raise _ApiError(2, f"Unknown function {function}")
            if faults.error_on.get(function) == n:
                entry["error"] = "error_on"
                return _json(faults.error_answer)
            rows = self._answer(function, body, parameters or {})
        except _ApiError as error:
            entry["error"] = error.message
            return _json({"error_status": error.status, "error": error.message})
        finally:
            self._apply_growth()
        entry["rows"] = len(rows)
        if faults.shuffle_on.get(function) == n:
            entry["error"] = "shuffled"
            random.Random(n).shuffle(rows)
        data = msgspec.json.encode(rows)
        if faults.truncate_on.get(function) == n:
            entry["error"] = "truncated"
            return Response(data[: len(data) // 2], content_type="application/json")
        if faults.drop_on.get(function) == n:
            entry["error"] = "dropped"
            cut = min(faults.drop_after_bytes, max(len(data) - 1, 0))
            return Response(
                _cut(data, cut, environ.get("werkzeug.socket")),
                content_type="application/json",
                headers={"Content-Length": str(len(data))},
            )
        return Response(data, content_type="application/json")

    def _apply_growth(self) -> None:
        with self._lock:
            for growth in self.faults.growth:
                if growth not in self._grown and self._raw_calls >= growth.after_raw_calls:
                    self._grown.add(growth)
                    self.dataset.grow(growth.function, growth.rows)

    # ----------------------------------------------------------------------------- functions
    def _answer(
        self, function: str, body: dict[str, Any], parameters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        dataset = self.dataset
        if function == CAMPAIGNS_LIST:
            return dataset.campaigns(body.get("ID_message"))
        if function == REPORT_CAMPAIGN:
            return self._report_campaign(parameters)
        if function == RESPONSES and "ID_send_message" in parameters:
            raise _ApiError(2, "ID_send_message filter is not supported by the sandbox")
        start = _whole(parameters, ID_KEYS[function][0])
        limit = _whole(parameters, "limit")
        if limit is not None and limit < 1:
            raise _ApiError(2, "Invalid limit")
        campaign = _whole(parameters, "ID_message")
        send = _whole(parameters, "ID_send")
        with self._lock:  # growth happens between calls, never during a page
            return dataset.page(
                function,
                start_id=start,
                limit=min(limit or MAX_LIMIT, MAX_LIMIT),
                campaign_ids=None if campaign is None else [campaign],
                send_ids=None if send is None else [send],
            )

    def _report_campaign(self, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        if parameters.get("ID_message") in (None, ""):
            raise _ApiError(2, "Missing ID_message")
        c = self.dataset.campaign_index(_whole(parameters, "ID_message"))
        range_from = _day(parameters, "range_from") or _months_before(self.today, 3)
        range_to = _day(parameters, "range_to") or self.today
        if c is None:
            return []
        return [self.dataset.send(s) for s in self.dataset.sends_of(c, range_from, range_to)]


# --------------------------------------------------------------------------------- helpers
def _parse(request: Request) -> Any:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return None
    try:
        return json.loads(request.get_data(cache=False))
    except ValueError:
        return None


def _masked(parameters: Any) -> Any:
    if not isinstance(parameters, dict):
        return copy.deepcopy(parameters)
    return {
        k: "***" if "md5" in str(k).lower() else copy.deepcopy(v) for k, v in parameters.items()
    }


def _whole(parameters: dict[str, Any], name: str) -> int | None:
    """A whole-number parameter (string or JSON number), None when absent or empty."""
    value = parameters.get(name)
    if value is None or value == "":
        return None
    number = as_int(value)
    if number is None:
        raise _ApiError(2, f"Invalid {name}")
    return number


def _day(parameters: dict[str, Any], name: str) -> date | None:
    value = parameters.get(name)
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _ApiError(2, f"Invalid {name}") from None


def _months_before(day: date, months: int) -> date:
    month = day.month - months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    return date(year, month, 1) - timedelta(days=1)  # pragma: no cover


def _cut(data: bytes, at: int, sock: socket.socket | None) -> Iterator[bytes]:
    """`at` bytes of `data`, then the connection closes before Content-Length is met."""
    yield data[:at]
    if sock is not None:
        # The chunk above is written and flushed once the server asks for the next one.
        sock.shutdown(socket.SHUT_RDWR)


def _json(body: Any) -> Response:
    return Response(json.dumps(body), content_type="application/json")


def _plain(status: int, text: str) -> Response:
    return Response(text, status=status, content_type="text/plain")


def _http_error(status: int, retry_after: str) -> Response:
    if status == 429:
        return Response(
            "Too Many Requests",
            status=429,
            content_type="text/plain",
            headers={"Retry-After": retry_after},
        )
    if status == 500:
        page = "<html><head><title>500</title></head><body><h1>Internal Server Error</h1>"
        return Response(page + "</body></html>", status=500, content_type="text/html")
    return Response(f"HTTP {status}", status=status, content_type="text/plain")
