"""The shared HTTP transport against a real local server: retries, Retry-After, resets, timeouts,
redirects (same origin only) and answers of the wrong kind."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from tap_emailtracking import redaction
from tap_emailtracking.errors import TransportError, VendorError
from tap_emailtracking.transports.http import (
    ApiCall,
    HttpPolicy,
    VendorHttp,
    expect_json,
    expect_xml,
    wrong_shape,
)
from tap_emailtracking.transports.ratelimit import RateBudget
from vendor_sandbox.servers.http import HttpServer

Answer = tuple[int, dict[str, str], bytes]


class ScriptedApp:
    """Answers the scripted responses in order, then 200 "ok"; records what it saw."""

    def __init__(self, *answers: Answer, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.seen: list[str] = []
        self.requests: list[tuple[str, str, bytes]] = []  # method, path, body

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.seen.append(environ.get("QUERY_STRING", ""))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], body))
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
        policy=HttpPolicy(base_delay_seconds=0.01, **policy),
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


def test_a_redirect_to_another_origin_is_refused_before_anything_is_sent(
    server: Callable[[ScriptedApp], str],
) -> None:
    other = ScriptedApp()
    other_url = server(other)
    app = ScriptedApp((307, {"Location": other_url + "/new?token=T0P"}, b""))
    with pytest.raises(VendorError) as caught:
        client([]).request(
            "POST",
            server(app) + "/api",
            data={"password": "pw"},
            what="submit",
            stream="opens",
            action="x",
            endpoint_setting="acme.url",
        )
    message = str(caught.value)
    assert "submit to http://127.0.0.1:" in message
    assert (
        f"was redirected (HTTP 307) to another origin (scheme, host or port), to {other_url}/new;"
        in (message)
    )
    assert "T0P" not in message
    assert "What to do: check acme.url" in message
    assert other.requests == []
    assert app.requests == [("POST", "/api", b"password=pw")]


def test_a_same_origin_redirect_is_followed_with_the_body_for_307(
    server: Callable[[ScriptedApp], str],
) -> None:
    app = ScriptedApp((308, {"Location": "/moved"}, b""))
    response = client([]).request(
        "POST", server(app) + "/api", data={"a": "1"}, what="c", action="x", endpoint_setting="s"
    )
    assert response.text == "ok"
    assert app.requests == [("POST", "/api", b"a=1"), ("POST", "/moved", b"a=1")]


def test_a_same_origin_303_is_followed_with_a_bodiless_get(
    server: Callable[[ScriptedApp], str],
) -> None:
    app = ScriptedApp((303, {"Location": "/result"}, b""))
    response = client([]).request(
        "POST", server(app) + "/api", data={"a": "1"}, what="c", action="x", endpoint_setting="s"
    )
    assert response.text == "ok"
    assert app.requests == [("POST", "/api", b"a=1"), ("GET", "/result", b"")]


def test_redirects_within_the_origin_are_bounded(server: Callable[[ScriptedApp], str]) -> None:
    app = ScriptedApp(*[(302, {"Location": f"/hop{n}"}, b"") for n in range(10)])
    with pytest.raises(VendorError, match="redirected more than 5 times"):
        client([]).request("GET", server(app), what="c", action="x", endpoint_setting="s")
    assert len(app.requests) == 6


CALL = ApiCall("Acme", "list call", "opens", "check acme.url")


def answer(server: Callable[[ScriptedApp], str], body: bytes, content_type: str) -> Any:
    app = ScriptedApp((200, {"Content-Type": content_type}, body))
    return client([]).request("GET", server(app), what="c", action="x", endpoint_setting="s")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html"),
        (b"\xef\xbb\xbf  \n<html><title>Maintenance</title></html>", "application/json"),
        (b'<?xml version="1.0"?><html xmlns="x"><body>Login</body></html>', "text/xml"),
        (b"<h1>Service Unavailable</h1>", "text/plain"),
        (b"We are down for maintenance", "text/html; charset=utf-8"),
    ],
)
def test_html_pages_are_named_for_json_and_xml(
    server: Callable[[ScriptedApp], str], body: bytes, content_type: str
) -> None:
    for expect in (expect_json, expect_xml):
        with pytest.raises(VendorError) as caught:
            expect(answer(server, body, content_type), CALL)
        message = str(caught.value)
        assert message.startswith(
            "Acme / opens: list call answered an HTML page (a proxy, login or maintenance page?)"
        )
        assert "What to do: check acme.url" in message


def test_answers_of_the_right_kind_are_read_whatever_their_label(
    server: Callable[[ScriptedApp], str],
) -> None:
    assert expect_json(answer(server, b'[{"id": 1}]', "text/html"), CALL) == [{"id": 1}]
    xml = b"<?xml version='1.0'?><exacttarget><system/></exacttarget>"
    assert expect_xml(answer(server, xml, "text/html"), CALL) == xml


def test_other_non_json_is_named_with_its_content_type(
    server: Callable[[ScriptedApp], str],
) -> None:
    with pytest.raises(VendorError, match=r"answered something that is not JSON \(text/plain\)"):
        expect_json(answer(server, b"Bad Gateway", "text/plain"), CALL)
    with pytest.raises(VendorError, match=r"answered something that is not XML \(text/plain\)"):
        expect_xml(answer(server, b"Bad Gateway", "text/plain"), CALL)


def test_the_excerpt_is_short_collapsed_and_redacted_before_it_is_cut(
    server: Callable[[ScriptedApp], str],
) -> None:
    redaction.register_secrets(["Pw-of-the-excerpt&<>"])
    echoed = "x" * 180 + "password=Pw-of-the-excerpt%26%3C%3E"  # crosses the cut
    page = f"<html>\n\n<body>   <pre>{echoed}</pre>\n</body></html>".encode()
    with pytest.raises(VendorError) as caught:
        expect_json(answer(server, page, "text/html"), CALL)
    quoted = str(caught.value).split('"')[1]
    assert len(quoted) <= 200
    assert quoted.startswith("xxx")  # tags dropped, whitespace collapsed
    assert "Pw-of" not in quoted


def test_json_of_the_wrong_shape_is_named_with_an_excerpt() -> None:
    error = wrong_shape(CALL, "a list where an object was expected", [1, 2])
    assert str(error) == (
        'Acme / opens: list call answered a list where an object was expected: "[1, 2]". '
        "What to do: check acme.url"
    )


# -- the rate budget, fed by a real server's headers ----------------------------------------------

EPOCH = 1_700_000_000.0


class FakeClock:
    """Wall time that moves only when the client sleeps; the sleeps are recorded."""

    def __init__(self) -> None:
        self.time = EPOCH
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


def timed_client(clock: FakeClock, budget: RateBudget | None = None) -> VendorHttp:
    return VendorHttp(
        vendor="Acme",
        policy=HttpPolicy(base_delay_seconds=0.01, max_delay_seconds=60),
        sleep=clock.sleep,
        clock=clock.now,
        budget=budget,
    )


def test_a_429_waits_for_retry_after_and_then_for_the_rate_limit_reset(
    server: Callable[[ScriptedApp], str],
) -> None:
    """429 with Retry-After: 7 and a spent budget resetting at an epoch 30 s away: the retry
    waits at least 7 s, then the budget holds the call until the reset (+1 s), not sooner."""
    reset = str(int(EPOCH) + 30)
    app = ScriptedApp(
        (429, {"Retry-After": "7", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}, b"")
    )
    clock = FakeClock()
    response = timed_client(clock).request(
        "GET", server(app), what="call", action="x", endpoint_setting="s"
    )
    assert response.text == "ok"
    assert len(app.requests) == 2
    assert clock.sleeps[0] >= 7
    assert clock.time == pytest.approx(EPOCH + 31)  # the second call went out after the reset
    assert len(clock.sleeps) == 2


def test_a_low_budget_slows_the_calls_down_before_any_429(
    server: Callable[[ScriptedApp], str], caplog: pytest.LogCaptureFixture
) -> None:
    """RateLimit-* headers (delta reset): 2 calls left in 20 s, then 1 in 10 s: 10 s apart."""
    caplog.set_level(logging.INFO, logger="tap_emailtracking.transports")
    limits = [("2", "20"), ("1", "10"), ("50", "60")]
    app = ScriptedApp(
        *[
            (
                200,
                {"RateLimit-Limit": "10", "RateLimit-Remaining": left, "RateLimit-Reset": reset},
                b"",
            )
            for left, reset in limits
        ]
    )
    clock = FakeClock()
    http = timed_client(clock)
    url = server(app)
    for _ in range(4):
        http.request("GET", url, what="call", action="x", endpoint_setting="s")
    assert clock.sleeps == pytest.approx([10, 10])  # the 4th call: 50 left, full speed again
    assert len(app.requests) == 4
    assert caplog.text.count("spacing calls") == 1


def test_two_clients_of_one_vendor_share_its_budget(server: Callable[[ScriptedApp], str]) -> None:
    """What one stream's answer says (nothing left for 30 s) holds back another stream's call."""
    app = ScriptedApp((200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}, b"ok"))
    clock = FakeClock()
    shared = RateBudget("Acme", clock=clock.now, sleep=clock.sleep)
    opens, clicks = timed_client(clock, shared), timed_client(clock, shared)
    url = server(app)
    opens.request("GET", url, what="opens call", action="x", endpoint_setting="s")
    assert clock.sleeps == []
    clicks.request("GET", url, what="clicks call", action="x", endpoint_setting="s")
    assert clock.sleeps == [31]


def test_each_vendor_client_gets_its_own_budget_by_default() -> None:
    one, other = VendorHttp(vendor="A"), VendorHttp(vendor="B")
    assert one.budget is not other.budget
    assert one.budget.vendor == "A"


def test_a_429_with_only_a_reset_header_waits_for_the_reset(
    server: Callable[[ScriptedApp], str],
) -> None:
    """No Retry-After, no remaining count: the 429 itself says the budget is spent."""
    app = ScriptedApp((429, {"RateLimit-Reset": "45"}, b""))
    clock = FakeClock()
    timed_client(clock).request("GET", server(app), what="call", action="x", endpoint_setting="s")
    assert len(app.requests) == 2
    assert clock.time >= EPOCH + 46
    assert clock.sleeps[0] <= 0.01  # the backoff itself is short; the budget waits the rest
