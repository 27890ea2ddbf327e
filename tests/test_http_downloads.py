"""Result downloads over HTTP against real local servers: resume, redirects, refusals, no leaks.

Two stdlib HTTP servers run on 127.0.0.1 for the module: the vendor's API host (HTTP Basic auth,
Range, faults) and a "storage" host on another port that plays the signed-URL host. The tap's
client is the real one; only the clock is fake (retries sleep through a list).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tap_emailtracking.errors import (
    AuthenticationError,
    CorruptFileError,
    RefusedFileNameError,
    RemoteFileMissingError,
    TransportError,
    UnusableResultError,
    VendorError,
)
from tap_emailtracking.transports.http_files import (
    HttpFileSite,
    ResultNotReadyError,
    http_site_settings,
)
from vendor_sandbox.servers.faults import DownloadFaults
from vendor_sandbox.servers.ftp import make_self_signed_cert

VENDOR = "impact"
STREAM = "clicks"
SID, TOKEN = "IRsid4242", "tok-9f8e7d6c5b4a"
SIGNATURE = "sig-0123456789abcdef"
BODY = random.Random(7).randbytes(1_500_000)
SMALL = b'{"Clicks": [{"Id": "1"}], "@numpages": "1"}'


@dataclass
class Host:
    """What one fake host serves and saw; tests flip its switches."""

    faults: DownloadFaults = field(default_factory=DownloadFaults)
    require_auth: bool = False
    ignore_range: bool = False
    bad_range_times: int = 0  # answer the next resumes with a range that starts elsewhere
    other: str = ""  # the other host's base URL, for redirects
    dead: str = ""  # a base URL where nothing listens
    seen: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        self.faults.reset()
        self.ignore_range = False
        self.bad_range_times = 0
        self.seen.clear()


def _handler(host: Host) -> type[BaseHTTPRequestHandler]:
    good_auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            with host.lock:
                host.seen.append({"path": self.path, **dict(self.headers.items())})
            if host.require_auth and self.headers.get("Authorization") != good_auth:
                self._answer(401, b'{"Message": "Unauthorized"}', "application/json")
                return
            path, _, _query = self.path.partition("?")
            parts = path.strip("/").split("/")
            route = getattr(self, f"_route_{parts[0]}", None)
            if route is None:
                self._answer(404, b"no such route", "text/plain")
                return
            route(*parts[1:])

        def _answer(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "vendor_session=cookie-secret; Path=/")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _route_files(self, name: str) -> None:
            body = {"big.bin": BODY, "small.json": SMALL}.get(name)
            if body is None:
                self._answer(404, b'{"Message": "not found"}', "application/json")
                return
            self._serve(body)

        def _route_gone(self) -> None:
            self._answer(410, b'{"Message": "expired"}', "application/json")

        def _route_expired(self) -> None:
            self._answer(
                403, b"<Error><Code>AccessDenied</Code>Request has expired</Error>", "text/xml"
            )

        def _route_forbidden(self) -> None:
            self._answer(403, b'{"Message": "not permitted"}', "application/json")

        def _route_redirect(self, target: str, *rest: str) -> None:
            location = f"{host.other}/{'/'.join((target, *rest))}?X-Signature={SIGNATURE}"
            self._answer(302, b"", "text/plain", {"Location": location})

        def _route_deadhop(self) -> None:
            location = f"{host.dead}/files/big.bin?X-Signature={SIGNATURE}"
            self._answer(302, b"", "text/plain", {"Location": location})

        def _route_samehop(self, name: str) -> None:
            self._answer(302, b"", "text/plain", {"Location": f"/files/{name}"})

        def _route_loop(self) -> None:
            self._answer(302, b"", "text/plain", {"Location": "/loop"})

        def _route_status(self, code: str) -> None:
            headers = {"Retry-After": "7"} if code in ("429", "503") else {}
            self._answer(int(code), b'{"Message": "busy"}', "application/json", headers)

        def _route_flaky(self, name: str) -> None:
            if host.faults.take_drop() is not None:  # armed: answer 503 instead of the file
                self._answer(503, b"busy", "text/plain", {"Retry-After": "7"})
                return
            self._route_files(name)

        def _route_page(self) -> None:
            page = b"<!DOCTYPE html><html><body><h1>Sign in</h1>session expired</body></html>"
            self._answer(200, page, "text/html")

        def _route_pending(self) -> None:
            job = json.dumps({"Id": "J-77", "Status": "RUNNING", "QueuedUri": "/Jobs/J-77"})
            self._answer(202, job.encode(), "application/json")

        def _serve(self, body: bytes) -> None:
            start = 0
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if wanted is not None and not host.ignore_range:
                start = int(wanted.group(1))
                if start >= len(body):
                    self._answer(416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
                    return
                shown = start
                if host.bad_range_times > 0:
                    host.bad_range_times -= 1
                    shown = start - 1  # claims to send one byte more than asked for
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            host.faults.record_download(offset=start)
            drop = host.faults.take_drop()
            if drop is not None and drop < len(part):
                self.wfile.write(part[:drop])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)  # the client sees the body end early
                return
            self.wfile.write(part)

    return Handler


@dataclass
class Servers:
    vendor: Host
    storage: Host
    vendor_url: str
    storage_url: str


def _serve(host: Host, tls_dir: Path | None = None) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(host))
    server.daemon_threads = True
    scheme = "http"
    if tls_dir is not None:
        cert, key = make_self_signed_cert(tls_dir, "127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    vendor, storage = Host(require_auth=True), Host()
    vendor_server, vendor_url = _serve(vendor)
    storage_server, storage_url = _serve(storage)
    vendor.other, storage.other = storage_url, vendor_url
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        vendor.dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    try:
        yield Servers(vendor, storage, vendor_url, storage_url)
    finally:
        for server in (vendor_server, storage_server):
            server.shutdown()
            server.server_close()


@pytest.fixture(autouse=True)
def _fresh(servers: Servers) -> None:
    servers.vendor.reset()
    servers.storage.reset()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _site(
    servers: Servers, sleeps: list[float], *, password: str = TOKEN, attempts: int = 5
) -> HttpFileSite:
    settings = http_site_settings(
        servers.vendor_url,
        username=SID,
        password=password,
        timeout_seconds=10,
        max_attempts=attempts,
        config_key="impact",
    )
    return HttpFileSite(
        settings,
        vendor=VENDOR,
        stream=STREAM,
        sleep=sleeps.append,
        headers={"Accept": "application/json"},
        credentials_setting="impact.account_sid / impact.auth_token",
    )


def _fetch(servers: Servers, sleeps: list[float], url: str, tmp_path: Path) -> bytes:
    target = tmp_path / "result.bin"
    with _site(servers, sleeps) as site:
        written = site.download(url, target)
    data = target.read_bytes()
    assert written == len(data)
    return data


def _no_secret(text: str) -> None:
    for secret in (SIGNATURE, TOKEN, "cookie-secret"):
        assert secret not in text


# --- happy paths and resume


def test_downloads_a_result_with_the_vendor_credentials(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    assert _fetch(servers, sleeps, "/files/big.bin", tmp_path) == BODY
    (seen,) = servers.vendor.seen
    assert seen["Authorization"].startswith("Basic ")
    assert seen["Accept-Encoding"] == "identity"  # raw bytes: offsets stay meaningful
    assert sleeps == []


def test_a_dropped_connection_resumes_with_range(
    servers: Servers, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    servers.vendor.faults.arm(400_000, times=2)
    with caplog.at_level(logging.INFO):
        data = _fetch(servers, sleeps, f"{servers.vendor_url}/files/big.bin", tmp_path)
    assert data == BODY
    faults = servers.vendor.faults
    assert (faults.downloads_started, faults.resumed_downloads) == (3, 2)
    ranges = [seen.get("Range") for seen in servers.vendor.seen]
    assert ranges == [None, "bytes=400000-", "bytes=800000-"]
    assert len(sleeps) == 2
    assert "resuming /files/big.bin" not in caplog.text  # names are URLs without the host...
    assert "resuming http://127.0.0.1" in caplog.text  # ...but the full safe URL


def test_a_server_that_ignores_range_starts_the_file_over(
    servers: Servers, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    servers.vendor.faults.arm(300_000, times=1)
    servers.vendor.ignore_range = True
    with caplog.at_level(logging.INFO):
        data = _fetch(servers, sleeps, "/files/big.bin", tmp_path)
    assert data == BODY  # not the first 300 kB twice
    assert [seen.get("Range") for seen in servers.vendor.seen] == [None, "bytes=300000-"]
    assert "ignored the resume request (HTTP 200, whole file); starting over" in caplog.text


def test_a_resume_answered_with_the_wrong_range_starts_over(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    servers.vendor.faults.arm(300_000, times=1)
    servers.vendor.bad_range_times = 1
    assert _fetch(servers, sleeps, "/files/big.bin", tmp_path) == BODY
    assert [seen.get("Range") for seen in servers.vendor.seen] == [None, "bytes=300000-", None]


def test_a_same_origin_redirect_keeps_the_credentials(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    assert _fetch(servers, sleeps, "/samehop/small.json", tmp_path) == SMALL
    assert [seen["path"] for seen in servers.vendor.seen] == [
        "/samehop/small.json",
        "/files/small.json",
    ]
    assert all(seen["Authorization"].startswith("Basic ") for seen in servers.vendor.seen)


def test_a_redirect_to_the_signed_host_sends_no_credentials(
    servers: Servers, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    servers.storage.faults.arm(500_000, times=1)  # and the signed host drops once: resumed
    with caplog.at_level(logging.DEBUG):
        data = _fetch(servers, sleeps, "/redirect/files/big.bin", tmp_path)
    assert data == BODY
    assert len(servers.vendor.seen) == 2  # the redirect is asked for again on the resume
    signed = servers.storage.seen
    assert [seen["path"] for seen in signed] == [f"/files/big.bin?X-Signature={SIGNATURE}"] * 2
    assert [seen.get("Range") for seen in signed] == [None, "bytes=500000-"]
    for seen in signed:
        assert "Authorization" not in seen
        assert "Cookie" not in seen  # the vendor's session cookie stays with the vendor
        assert "Accept" not in seen or seen["Accept"] != "application/json"
    assert "following it without credentials" in caplog.text
    _no_secret(caplog.text)


# --- results that are gone, refused or not files


@pytest.mark.parametrize("url", ["/files/nothing.bin", "/gone"])
def test_a_missing_result_is_unusable(
    servers: Servers, sleeps: list[float], tmp_path: Path, url: str
) -> None:
    with pytest.raises(RemoteFileMissingError) as caught:
        _fetch(servers, sleeps, url, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{VENDOR} / {STREAM} (")
    assert f"{servers.vendor_url}{url}" in message
    assert "is gone (HTTP 4" in message
    assert "the job is forgotten" in message
    assert sleeps == []  # not retried


def test_an_expired_signed_url_is_a_missing_result_and_its_query_stays_secret(
    servers: Servers, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(RemoteFileMissingError) as caught:
        _fetch(servers, sleeps, "/redirect/expired", tmp_path)
    message = str(caught.value)
    assert f"the signed download link at {servers.storage_url}/expired was refused (HTTP 403)" in (
        message
    )
    _no_secret(message + caplog.text)
    assert isinstance(caught.value, UnusableResultError)


def test_refused_credentials_are_an_authentication_error(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    site = _site(servers, sleeps, password="wrong-token")
    with site, pytest.raises(AuthenticationError) as caught:
        site.download("/files/small.json", tmp_path / "out")
    message = str(caught.value)
    assert "refused the credentials for the result download (HTTP 401)" in message
    assert "check impact.account_sid / impact.auth_token" in message
    assert "wrong-token" not in message
    assert not isinstance(caught.value, UnusableResultError)  # the job is kept


def test_a_forbidden_result_on_the_vendor_host_is_an_authentication_error(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    with pytest.raises(AuthenticationError, match=r"do(es)? not let these credentials"):
        _fetch(servers, sleeps, "/forbidden", tmp_path)


def test_an_html_page_instead_of_the_file_is_named(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    with pytest.raises(CorruptFileError) as caught:
        _fetch(servers, sleeps, "/page", tmp_path)
    message = str(caught.value)
    assert "answered an HTML page" in message
    assert "Sign in session expired" in message
    assert (tmp_path / "result.bin").read_bytes() == b""  # the page never became the file


def test_a_202_job_answer_is_not_ready_and_keeps_the_job(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    with pytest.raises(ResultNotReadyError) as caught:
        _fetch(servers, sleeps, "/pending", tmp_path)
    message = str(caught.value)
    assert "answered HTTP 202 (not finished yet)" in message
    assert '"Status": "RUNNING"' in message
    assert "the job is kept" in message
    assert not isinstance(caught.value, UnusableResultError)


# --- transient answers


def test_busy_answers_are_retried_honouring_retry_after(
    servers: Servers, sleeps: list[float], tmp_path: Path
) -> None:
    servers.vendor.faults.arm(0, times=2)  # /flaky answers 503 + Retry-After: 7 twice
    assert _fetch(servers, sleeps, "/flaky/small.json", tmp_path) == SMALL
    assert len(sleeps) == 2
    assert all(wait >= 7 for wait in sleeps)


@pytest.mark.parametrize("code", ["429", "500"])
def test_retries_run_out_with_a_transport_error(
    servers: Servers, sleeps: list[float], tmp_path: Path, code: str
) -> None:
    target = tmp_path / "out"
    with _site(servers, sleeps, attempts=3) as site, pytest.raises(TransportError) as caught:
        site.download(f"/status/{code}", target)
    message = str(caught.value)
    assert "failed 3 times in a row" in message
    assert f"HTTP {code}" in message
    assert "impact.max_attempts" in message
    assert len(sleeps) == 2
    assert (min(sleeps) >= 7) == (code == "429")


def test_a_redirect_loop_ends(servers: Servers, sleeps: list[float], tmp_path: Path) -> None:
    with pytest.raises(VendorError, match="redirected more than 5 times"):
        _fetch(servers, sleeps, "/loop", tmp_path)
    assert len(servers.vendor.seen) == 6


# --- https


@pytest.fixture
def tls_vendor(tmp_path: Path, servers: Servers) -> Iterator[tuple[str, Path]]:
    host = Host(other=servers.storage_url)
    server, url = _serve(host, tls_dir=tmp_path / "tls")
    try:
        yield url, tmp_path / "tls" / "cert.pem"
    finally:
        server.shutdown()
        server.server_close()


def test_https_is_never_left_for_http(
    servers: Servers, sleeps: list[float], tmp_path: Path, tls_vendor: tuple[str, Path]
) -> None:
    url, ca_file = tls_vendor
    settings = http_site_settings(url, username=SID, password=TOKEN, tls_ca_file=str(ca_file))
    with HttpFileSite(settings, vendor=VENDOR, stream=STREAM, sleep=sleeps.append) as site:
        assert site.download("/files/small.json", tmp_path / "ok") == len(SMALL)
        with pytest.raises(VendorError, match="which is not https; the tap does not follow it"):
            site.download("/redirect/files/small.json", tmp_path / "out")
        with pytest.raises(RefusedFileNameError, match="plain http while the vendor's API"):
            site.download(f"{servers.storage_url}/files/small.json", tmp_path / "out")
    assert servers.storage.seen == []  # nothing went to the http host


def test_an_unreachable_signed_host_keeps_its_query_out_of_the_error(
    servers: Servers, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "out"
    site = _site(servers, sleeps, attempts=2)
    with caplog.at_level(logging.DEBUG), site, pytest.raises(TransportError) as caught:
        site.download("/deadhop", target)
    message = str(caught.value)
    assert "failed 2 times in a row" in message
    assert "ConnectionError" in message
    _no_secret(message + caplog.text)
