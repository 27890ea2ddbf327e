"""Run a WSGI app (a vendor's fake API) on 127.0.0.1 in a background thread with werkzeug."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_POLL_SECONDS = 0.05
_JOIN_TIMEOUT = 10.0


class _QuietRequestHandler(WSGIRequestHandler):
    """Drop the per-request access log line; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class HttpServer:
    """Serve `app` on `host:port` (port 0 picks a free one) with one thread per request."""

    def __init__(self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"HttpServer({self.url})"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        """Bind and serve in a daemon thread; returns self once the port is bound."""
        if self._server is not None:
            return self
        server = make_server(
            self.host,
            self._requested_port,
            self.app,
            threaded=True,
            request_handler=_QuietRequestHandler,
        )
        self._server = server
        self.port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name=f"sandbox-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wait for the serving loop to end and close the socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(_JOIN_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
