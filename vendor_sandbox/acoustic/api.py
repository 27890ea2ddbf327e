"""Acoustic Campaign's APIs as one WSGI app: OAuth, BEX job definitions (REST), the XML API.

Speaks what ``docs/acoustic.md`` describes (the tap's reading of the vendor), including its [I]
choices; each concern has its own module, and :class:`AcousticApi` puts them together:

* :mod:`.oauth`: ``POST /oauth/token`` and bearer tokens; every REST and XML call needs
  ``Authorization: Bearer <token>``, and an unknown, expired or revoked token answers 401
  (REST: ``{"error": "invalid_token"}``).  SFTP logins as ``oauth`` + a live token, or the ftp
  user's email + ``ftp_password``.
* :mod:`.rest`: ``/rest/bulkeventexport/jobdefinition[/<id>]`` (BEX job definitions).
* :mod:`.xmlapi`: ``POST /XMLAPI``: ``RawRecipientDataExport`` and ``GetJobStatus``.
* :mod:`.files`: the BEX files in the org admin's SFTP folder and the SFTP access hook.
* :mod:`.faults`: the fault switches (:class:`AcousticFaults`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from vendor_sandbox.acoustic.base import AcousticState
from vendor_sandbox.acoustic.data import AcousticDataset
from vendor_sandbox.acoustic.faults import AcousticFaults, BexDamage
from vendor_sandbox.acoustic.files import BexChannel, BexFile, BexFilesPart
from vendor_sandbox.acoustic.oauth import OAuthPart
from vendor_sandbox.acoustic.rest import (
    DEFINITIONS_PATH,
    FIRST_DEFINITION_ID,
    FREQUENCIES,
    DefinitionsPart,
)
from vendor_sandbox.acoustic.xmlapi import FIRST_JOB_ID, RRDE_ELEMENTS, XmlApiPart
from vendor_sandbox.jobs import JobBoard, JobSettings
from vendor_sandbox.servers.http import echo_page, redirect_answer
from vendor_sandbox.servers.ratelimit import metered

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "FIRST_DEFINITION_ID",
    "FIRST_JOB_ID",
    "FREQUENCIES",
    "RRDE_ELEMENTS",
    "AcousticApi",
    "AcousticFaults",
    "BexChannel",
    "BexDamage",
    "BexFile",
]


class AcousticApi(OAuthPart, DefinitionsPart, XmlApiPart, BexFilesPart):
    """WSGI app of Acoustic's OAuth, BEX REST and XML APIs backed by an :class:`AcousticDataset`.

    Counters: ``token_requests`` (every call of the token endpoint), ``definition_posts``,
    ``definition_puts``, ``definition_deletes``, ``rrde_submissions``, ``status_polls``,
    ``sftp_oauth_logins``; ``requests`` lists every call as ``{"kind": "token"|"rest"|"xml",
    "method", "path", "operation", "status"}`` (no secrets); ``malformed_lines`` maps file name ->
    line of the injected bad row; ``rrde_files`` lists the result ZIPs written.  The job board
    ``jobs`` (its settings: RRDE durations and limit) gives ``submission_log`` (time, job id,
    ``<start>..<end>`` local ISO times, when it finished), ``max_in_flight``, ``jobs_in_flight``
    and ``rejected_submissions`` (refused by the limit).
    """

    def __init__(
        self,
        dataset: AcousticDataset,
        files_root: Path,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        ftp_user_id: str,
        ftp_password: str | None = None,
        prefix: str = "",
        download_folder: str = "/download",
        token_lifetime: float = 14400,
        polls_until_complete: int = 3,
        org_timezone: str | None = None,
        auto_rotate_until: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
        jobs: JobSettings | None = None,
    ) -> None:
        AcousticState.__init__(
            self,
            dataset,
            files_root,
            ftp_user_id=ftp_user_id,
            download_folder=download_folder,
            clock=clock,
        )
        self.prefix = prefix.rstrip("/")
        self.requests: list[dict[str, Any]] = []
        self._init_oauth(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            ftp_password=ftp_password,
            token_lifetime=token_lifetime,
        )
        self._init_definitions(auto_rotate_until=auto_rotate_until)
        self._init_xml_api(
            polls_until_complete=polls_until_complete,
            org_timezone=org_timezone or dataset.spec.timezone,
            jobs=JobBoard(clock, jobs),
        )
        self._init_bex_files()
        self.download_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------------- WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix) :]
        response, kind, operation = self._dispatch(request, path)
        with self._lock:
            self.requests.append(
                {
                    "kind": kind,
                    "method": request.method,
                    "path": path,
                    "operation": operation,
                    "status": response.status_code,
                }
            )
        return response(environ, start_response)

    def _dispatch(self, request: Request, path: str) -> tuple[Response, str, str]:
        lowered = path.rstrip("/").lower()
        if lowered == "/oauth/token":
            kind = "token"
        elif lowered == DEFINITIONS_PATH or lowered.startswith(DEFINITIONS_PATH + "/"):
            kind = "rest"
        elif lowered == "/xmlapi":
            kind = "xml"
        else:
            return Response("Not Found", status=404, content_type="text/plain"), "other", ""
        operation = ["rate_limited"]  # what `serve` did, if the rate limit let it run

        def serve() -> Response:
            response, _, operation[0] = self._serve(request, path, kind)
            return response

        return metered(self.faults.rate_limit, kind, serve), kind, operation[0]

    def _serve(self, request: Request, path: str, kind: str) -> tuple[Response, str, str]:
        if self.faults.redirect is not None:
            moved = redirect_answer(request, *self.faults.redirect)
            if moved is not None:
                return moved, kind, "redirect"
        if kind in self.faults.html_pages:
            return echo_page(request), kind, "html_page"
        with self._lock:
            http_error = self.faults.http_errors.pop(0) if self.faults.http_errors else None
        if http_error is not None:
            return _http_error(http_error), kind, "http_error"
        if kind == "token":
            return self._token(request), kind, "token"
        if kind == "rest":
            return self._rest(request, path)
        return self._xml(request)


def _http_error(status: int) -> Response:
    if status == 429:
        return Response(
            "Too Many Requests", status=429, content_type="text/plain", headers={"Retry-After": "0"}
        )
    if status == 500:
        page = "<html><head><title>500</title></head><body><h1>Internal Server Error</h1></body>"
        return Response(page + "</html>", status=500, content_type="text/html")
    if status == 503:
        return Response("Service Unavailable", status=503, content_type="text/plain")
    return Response(f"HTTP {status}", status=status, content_type="text/plain")
