"""Run a WSGI app (a vendor's fake API) on 127.0.0.1 in a background thread with werkzeug.

Also the misbehaviour every vendor API can be asked for: a redirect (`redirect_answer`) and a
proxy's HTML page that echoes the request (`echo_page`), as WAFs and maintenance pages do.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from typing_extensions import override
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from vendor_sandbox.servers.base import ThreadedServer

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_POLL_SECONDS = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """Drop the per-request access log line; errors are still logged.

    An app with its own clock (impact's, which a test moves by days) puts it in the request's
    environ as `vendor_sandbox.now`; the `Date` header then carries it.
    """

    @override
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    @override
    def date_time_string(self, timestamp: float | None = None) -> str:
        environ = getattr(self, "environ", None)
        if timestamp is None and isinstance(environ, dict) and "vendor_sandbox.now" in environ:
            timestamp = float(environ["vendor_sandbox.now"])
        return super().date_time_string(timestamp)


def redirect_answer(request: Request, status: int, location: str) -> Response | None:
    """A redirect to `location` ("{path}" is the request's path), or None once it is there."""
    target = location.format(path=request.path)
    if urljoin(request.url, target) == request.url:
        return None
    return Response("Moved", status=status, content_type="text/plain", headers={"Location": target})


def echo_page(request: Request, *, status: int = 200) -> Response:
    """A blocking proxy's HTML page quoting the request's Authorization header and body."""
    authorization = request.headers.get("Authorization")
    seen = (f"Authorization: {authorization}\n" if authorization else "") + request.get_data(
        as_text=True
    )
    page = f"<html><head><title>Blocked</title></head><body><pre>{seen}</pre></body></html>"
    return Response(page, status=status, content_type="text/html; charset=utf-8")


class HttpServer(ThreadedServer):
    """Serve `app` on `host:port` (port 0 picks a free one) with one thread per request.

    With `tls_dir` it serves https with a self-signed certificate for the host, written there as
    `cert.pem` (`ca_file`: clients trust it through `REQUESTS_CA_BUNDLE`).
    """

    kind = "http"

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_dir: Path | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.app = app
        self.tls_dir = tls_dir
        self.ca_file: Path | None = None
        self._server: BaseWSGIServer | None = None

    @override
    def __repr__(self) -> str:
        return f"HttpServer({self.url})"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`."""
        scheme = "http" if self.tls_dir is None else "https"
        return f"{scheme}://{self.host}:{self.port}"

    @override
    def _bind(self) -> None:
        ssl_context: tuple[str, str] | None = None
        if self.tls_dir is not None:
            from vendor_sandbox.servers.ftp import make_self_signed_cert  # noqa: PLC0415

            self.tls_dir.mkdir(parents=True, exist_ok=True)
            cert, key = make_self_signed_cert(self.tls_dir, self.host)
            self.ca_file = cert
            ssl_context = (str(cert), str(key))
        try:
            self._server = make_server(
                self.host,
                self._requested_port,
                self.app,
                threaded=True,
                request_handler=_QuietRequestHandler,
                ssl_context=ssl_context,
            )
        except SystemExit:  # werkzeug exits the process when the port is taken
            port = f"{self.host}:{self._requested_port}"
            raise OSError(errno.EADDRINUSE, f"cannot listen on {port}: in use") from None
        self.port = self._server.server_port

    @override
    def _serve(self) -> None:
        if self._server is not None:
            self._server.serve_forever(poll_interval=_POLL_SECONDS)

    @override
    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    @override
    def _cleanup(self) -> None:
        if self._server is not None:
            self._server.server_close()
        self._server = None
