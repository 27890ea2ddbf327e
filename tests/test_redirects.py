"""Redirects, through the real tap CLI: only same-origin ones are followed.

A 307/308 makes an HTTP client re-send the body, and the bodies carry the ExactTarget password
and the Acoustic client secret and refresh token. The sandbox answers with a redirect to a second
local server that records every request it gets: it must get none. A redirect within the same
origin is followed and the sync completes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.sandbox import Sandbox
from vendor_sandbox.servers.http import HttpServer

from .conftest import TapRun, parse_messages, run_tap, tap_command, tap_env
from .test_acoustic_flow import assert_matches_truth as assert_acoustic_matches_truth
from .test_exacttarget_flow import assert_matches_truth


class Recorder:
    """A second server: records every request it receives and answers 200 "ok"."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.redirect_to = redirect_to
        self.seen: list[tuple[str, str, int]] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], len(body)))
        if self.redirect_to is not None:
            start_response("308 Permanent Redirect", [("Location", self.redirect_to)])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


@pytest.fixture
def elsewhere() -> Iterator[tuple[Recorder, HttpServer]]:
    recorder = Recorder()
    with HttpServer(recorder) as server:
        yield recorder, server


def error_line(run: TapRun) -> str:
    """The tap's one-line error (the ERROR log line that says what to do)."""
    assert run.returncode != 0, "the run should have failed"
    lines = [
        line.split(" | ", 3)[-1]
        for line in run.stderr.splitlines()
        if " | ERROR " in line and "What to do: " in line
    ]
    assert lines, run.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("status", [307, 308])
def test_exacttarget_redirect_to_another_server_is_not_followed(
    sandbox: Sandbox, tmp_path: Path, elsewhere: tuple[Recorder, HttpServer], status: int
) -> None:
    recorder, server = elsewhere
    sandbox.et_api.faults.redirect = (status, server.url + "{path}")
    run = run_tap(tmp_path, sandbox.tap_config())
    message = error_line(run)
    assert message.startswith("ExactTarget / ")
    assert f"was redirected (HTTP {status}) to another origin" in message
    assert f"to {server.url}/exacttarget/integrate.aspx" in message
    assert "What to do: check exacttarget.endpoint" in message
    assert recorder.seen == []  # not a single request, so no body and no password
    assert sandbox.et_api.submissions == 0


def test_acoustic_token_redirect_to_another_server_is_not_followed(
    tmp_path: Path, elsewhere: tuple[Recorder, HttpServer]
) -> None:
    recorder, server = elsewhere
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        api = box.acoustic_api
        assert api is not None
        api.faults.redirect = (307, server.url + "{path}")
        run = run_tap(tmp_path / "run", box.tap_config(vendors=("acoustic",)))
        message = error_line(run)
        assert message.startswith("Acoustic")
        assert "OAuth token request" in message
        assert "was redirected (HTTP 307) to another origin" in message
        assert "check acoustic.api_host (or acoustic.pod)" in message
        assert [r["operation"] for r in api.requests] == ["redirect"]
    assert recorder.seen == []  # the client secret and refresh token went nowhere


def run_trusting(workdir: Path, config: dict[str, Any], ca_file: Path) -> TapRun:
    """Run the tap CLI with `ca_file` as its trusted CA bundle (a local https server)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**tap_env(), "REQUESTS_CA_BUNDLE": str(ca_file)}
    done = subprocess.run(
        tap_command(workdir, config),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    return TapRun(done.returncode, done.stdout, done.stderr, parse_messages(done.stdout))


def test_a_redirect_from_https_to_http_is_not_followed(
    sandbox: Sandbox, tmp_path: Path, elsewhere: tuple[Recorder, HttpServer]
) -> None:
    recorder, server = elsewhere
    front = Recorder(redirect_to=server.url + "/exacttarget/integrate.aspx")
    with HttpServer(front, tls_dir=tmp_path / "tls") as https:
        assert https.url.startswith("https://")
        assert https.ca_file is not None
        config = sandbox.tap_config(endpoint=https.url + "/exacttarget/integrate.aspx")
        run = run_trusting(tmp_path / "run", config, https.ca_file)
    message = error_line(run)
    assert "was redirected (HTTP 308) from https to http" in message
    assert (
        "check exacttarget.endpoint: if you trust the new address, set it there (over https)"
        in (message)
    )
    # One submission reached the configured server (the sync's start, whose error is raised
    # when the first ExactTarget stream runs, not tried again); it did not follow the redirect.
    assert [(method, path) for method, path, _ in front.seen] == [
        ("POST", "/exacttarget/integrate.aspx"),
    ]
    assert recorder.seen == []


def test_exacttarget_follows_a_same_origin_redirect(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.redirect = (307, "/exacttarget/moved/integrate.aspx")
    run = run_tap(tmp_path, sandbox.tap_config())
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Tracking BulkAsync submit was redirected (HTTP 307) within http://127.0.0.1:" in (
        run.stderr
    )
    assert_matches_truth(sandbox, run)


def test_acoustic_follows_a_same_origin_redirect(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        api = box.acoustic_api
        assert api is not None
        api.faults.redirect = (308, "{path}?moved=1")
        run = run_tap(tmp_path / "run", box.tap_config(vendors=("acoustic",)))
        assert run.returncode == 0, run.stderr[-3000:]
        assert_acoustic_matches_truth(box, run)
        operations = [r["operation"] for r in api.requests]
        # Every call was redirected once, then served at the new address.
        assert operations[:2] == ["redirect", "token"]
        assert operations.count("redirect") == len(operations) // 2
