"""The shared HTTP transport against a real local server: retries, Retry-After, resets, timeouts."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from tap_emailtracking.errors import TransportError
from tap_emailtracking.transports.http import RetryPolicy, VendorHttp, retry_after_seconds
from vendor_sandbox.servers.http import HttpServer

Answer = tuple[int, dict[str, str], bytes]


class ScriptedApp:
    """Answers the scripted responses in order, then 200 "ok"; records what it saw."""

    def __init__(self, *answers: Answer, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.seen: list[str] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.seen.append(environ.get("QUERY_STRING", ""))
        if self.delay:
            time.sleep(self.delay)
        status, headers, body = self.answers.pop(0) if self.answers else (200, {}, b"ok")
        start_response(f"{status} X", list(headers.items()))
        return [body]


@pytest.fixture
def server() -> Iterator[Callable[[ScriptedApp], str]]:
    started: list[HttpServer] = []

    def start(app: ScriptedApp) -> str:
        http = HttpServer(app).start()
        started.append(http)
        return http.url

    yield start
    for http in started:
        http.stop()


def client(sleeps: list[float], **policy: Any) -> VendorHttp:
    return VendorHttp(
        vendor="Acme",
        policy=RetryPolicy(base_delay_seconds=0.01, **policy),
        sleep=sleeps.append,
    )


def test_5xx_and_429_are_retried_and_retry_after_is_honoured(
    server: Callable[[ScriptedApp], str],
) -> None:
    app = ScriptedApp((500, {}, b"boom"), (429, {"Retry-After": "7"}, b"slow down"))
    url = server(app)
    sleeps: list[float] = []
    response = client(sleeps).request(
        "POST", url, what="submit", action="re-run", endpoint_setting="acme.url"
    )
    assert response.status_code == 200
    assert len(app.seen) == 3
    assert sleeps[1] >= 7  # waited at least what the server asked


def test_a_client_error_is_returned_not_retried(server: Callable[[ScriptedApp], str]) -> None:
    app = ScriptedApp((401, {}, b"no"))
    response = client([]).request(
        "GET", server(app), what="call", action="x", endpoint_setting="acme.url"
    )
    assert response.status_code == 401
    assert len(app.seen) == 1


def test_exhausted_retries_name_the_vendor_and_hide_the_query(
    server: Callable[[ScriptedApp], str],
) -> None:
    app = ScriptedApp(*[(503, {}, b"down")] * 3)
    url = server(app) + "/api?token=SECRET-IN-QUERY"
    with pytest.raises(TransportError) as caught:
        client([], max_attempts=3).request(
            "GET",
            url,
            what="Batch Inquire",
            stream="opens",
            action="re-run later",
            endpoint_setting="acme.url",
        )
    message = str(caught.value)
    assert message.startswith("Acme / opens: Batch Inquire to http://127.0.0.1:")
    assert "HTTP 503" in message
    assert "re-run later" in message
    assert "SECRET-IN-QUERY" not in message
    assert app.seen[0] == "token=SECRET-IN-QUERY"


def test_connection_resets_are_retried() -> None:
    """A server that accepts and drops the first two connections, then answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted = []

    def serve() -> None:
        for attempt in range(3):
            conn, _ = listener.accept()
            accepted.append(attempt)
            if attempt < 2:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sleeps: list[float] = []
    response = client(sleeps).request(
        "GET", f"http://127.0.0.1:{port}/", what="call", action="x", endpoint_setting="acme.url"
    )
    thread.join(5)
    listener.close()
    assert response.text == "ok"
    assert accepted == [0, 1, 2]
    assert len(sleeps) == 2


def test_read_timeouts_are_retried_then_reported(server: Callable[[ScriptedApp], str]) -> None:
    app = ScriptedApp(delay=0.5)
    with pytest.raises(TransportError, match="ReadTimeout"):
        client([], max_attempts=2, read_timeout_seconds=0.1).request(
            "GET", server(app), what="call", action="x", endpoint_setting="acme.url"
        )
    assert len(app.seen) == 2


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 50 < (retry_after_seconds({"Retry-After": future}) or 0) <= 60
