"""Tests of the sandbox's shared parts: the job board (durations, submission log, job limit), its
wiring into `Sandbox` and `python -m vendor_sandbox serve`, and the one server lifecycle."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import Client
from werkzeug.wrappers import Response

from tests.test_sandbox_acoustic import rrde_inner
from tests.test_sandbox_exacttarget import envelope, inquire_xml, submit_xml
from vendor_sandbox.jobs import DONE, QUEUED, RUNNING, JobBoard, JobLimitError, JobSettings
from vendor_sandbox.sandbox import Sandbox, SandboxCredentials, SandboxPorts
from vendor_sandbox.servers.base import ThreadedServer
from vendor_sandbox.servers.ftp import FtpServer
from vendor_sandbox.servers.http import HttpServer
from vendor_sandbox.servers.sftp import SftpServer

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ the job board
def test_settings_from_text() -> None:
    settings = JobSettings.from_text("2,20-40", seed=7, limit=4)
    assert settings == JobSettings(queued=(2.0, 2.0), running=(20.0, 40.0), seed=7, limit=4)
    assert settings.timed
    assert not JobSettings(limit=3).timed
    for bad in ("20-40", "x,1", "1,40-20", "-1,2"):
        with pytest.raises(ValueError, match="expected"):
            JobSettings.from_text(bad)


def test_each_job_draws_its_own_seeded_duration() -> None:
    settings = JobSettings(queued=(0, 1), running=(20, 40), seed=3)
    draws = [settings.draw(n) for n in range(8)]
    assert all(0 <= q <= 1 and 20 <= r <= 40 for q, r in draws)
    assert len({r for _, r in draws}) == 8  # a spread, not one value
    assert draws == [JobSettings(queued=(0, 1), running=(20, 40), seed=3).draw(n) for n in range(8)]
    assert draws != [JobSettings(queued=(0, 1), running=(20, 40), seed=4).draw(n) for n in range(8)]


def test_board_stages_by_polls_by_default() -> None:
    board = JobBoard(Clock())
    board.submit("a", "w1")
    stages = [board.stage("a", polls=n, polls_until_done=3) for n in (1, 2, 3, 4)]
    assert stages == [QUEUED, RUNNING, DONE, DONE]
    assert board.in_flight() == 1  # done only once the api says so
    board.finish("a")
    assert board.in_flight() == 0


def test_board_limit_and_max_in_flight_with_durations() -> None:
    clock = Clock()
    board = JobBoard(clock, JobSettings(running=(10, 10), limit=2))
    board.submit("a", "w1")
    clock.now += 5
    board.submit("b", "w2")
    with pytest.raises(JobLimitError):
        board.submit("c", "w3")
    clock.now += 5  # a is due
    board.submit("c", "w3")
    board.finish("b")  # failed early
    assert board.in_flight() == 1
    assert board.max_in_flight == 2
    assert board.rejected == 1
    assert [(e.job_id, e.at, e.due, e.finished, e.ends) for e in board.log] == [
        ("a", 500.0, 510.0, None, 510.0),
        ("b", 505.0, 515.0, 510.0, 510.0),
        ("c", 510.0, 520.0, None, 520.0),
    ]


def test_board_reset_starts_a_fresh_log_with_new_settings() -> None:
    clock = Clock()
    board = JobBoard(clock, JobSettings(running=(10, 10), limit=1, seed=5))
    board.submit("a", "w1")
    with pytest.raises(JobLimitError):
        board.submit("b", "w2")
    board.reset(JobSettings(running=(3, 3), seed=5))
    assert (board.log, board.max_in_flight, board.rejected, board.in_flight()) == ([], 0, 0, 0)
    board.submit("b", "w2")  # no limit now, and "a" is forgotten
    board.submit("c", "w3")
    assert [(e.job_id, e.due) for e in board.log] == [("b", 503.0), ("c", 503.0)]
    assert board.max_in_flight == 2
    board.reset()  # keeps the settings
    assert board.settings == JobSettings(running=(3, 3), seed=5)
    assert board.log == []


def test_board_is_thread_safe() -> None:
    board = JobBoard(Clock(), JobSettings(limit=50))

    def worker(n: int) -> None:
        for i in range(20):
            with contextlib.suppress(JobLimitError):
                board.submit(f"{n}-{i}", "w")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(board.log) == 50
    assert board.rejected == 50
    assert board.max_in_flight == 50


# ------------------------------------------------------------------------------ Sandbox wiring
def test_sandbox_hands_settings_and_one_clock_to_both_vendors(tmp_path: Path) -> None:
    clock = Clock()
    box = Sandbox(
        tmp_path / "box",
        exacttarget_jobs=JobSettings(running=(20, 40), seed=2),
        acoustic_jobs=JobSettings(queued=(1, 1), running=(30, 30), limit=8),
        clock=clock,
    )
    assert box.acoustic_api is not None
    creds = SandboxCredentials()
    et = Client(box.et_api)
    envelope_body = envelope(
        submit_xml("1/1/2024", "1/7/2024"), user=creds.et_username, password=creds.et_password
    )
    et.post("/exacttarget/integrate.aspx", data={"qf": "xml", "xml": envelope_body})
    clock.now = 501.0
    acoustic = Client(box.acoustic_api)
    grant = {
        "grant_type": "refresh_token",
        "client_id": creds.acoustic_client_id,
        "client_secret": creds.acoustic_client_secret,
        "refresh_token": creds.acoustic_refresh_token,
    }
    tok = acoustic.post("/acoustic/oauth/token", data=grant).json["access_token"]
    document = f"<Envelope><Body><RawRecipientDataExport>{rrde_inner()}</RawRecipientDataExport>"
    acoustic.post(
        "/acoustic/XMLAPI",
        data={"xml": document + "</Body></Envelope>"},
        headers={"Authorization": f"Bearer {tok}"},
    )
    [et_job] = box.et_api.submission_log
    [rrde_job] = box.acoustic_api.submission_log
    assert (et_job.at, rrde_job.at) == (500.0, 501.0)
    assert et_job.due is not None
    assert 520 <= et_job.due <= 540
    assert rrde_job.due == 532.0
    assert box.acoustic_api.jobs.settings.limit == 8


def test_serve_takes_job_durations_limits_and_the_rrde_mode(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    command = [
        sys.executable,
        "-m",
        "vendor_sandbox",
        "serve",
        "--dir",
        str(folder),
        "--free-ports",
        "--exacttarget-job-seconds",
        "60,60",
        "--exacttarget-job-limit",
        "1",
        "--acoustic-job-seconds",
        "0,50-70",
        "--acoustic-mode",
        "raw_recipient_data",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert "vendor sandbox ready" in process.stdout.readline(), process.stderr
        config = json.loads((folder / "tap-config.json").read_text(encoding="utf-8"))
        truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
        et, acoustic = config["exacttarget"], config["acoustic"]
        assert acoustic["export_mode"] == "raw_recipient_data"
        expected = Sandbox(tmp_path / "same").ground_truth_counts(
            ("acoustic",), acoustic_mode="raw_recipient_data"
        )
        assert truth["acoustic_email_events"] == expected["acoustic_email_events"]

        def et_call(system: str) -> str:
            body = envelope(system, user=et["username"], password=et["password"])
            return requests.post(et["endpoint"], data={"qf": "xml", "xml": body}, timeout=10).text

        batch = et_call(submit_xml("1/1/2024", "1/7/2024"))
        batch_id = batch.split("<batchID>")[1].split("<")[0]
        # By polls it would be Complete at the second inquiry; by the clock it is queued 60 s.
        for _ in range(3):
            assert "<status>Scheduled</status>" in et_call(inquire_xml(batch_id))
        assert "<error>7</error>" in et_call(submit_xml("1/8/2024", "1/14/2024"))

        grant = {
            "grant_type": "refresh_token",
            "client_id": acoustic["client_id"],
            "client_secret": acoustic["client_secret"],
            "refresh_token": acoustic["refresh_token"],
        }
        host = acoustic["api_host"]
        tok = requests.post(f"{host}/oauth/token", data=grant, timeout=10).json()["access_token"]
        auth = {"Authorization": f"Bearer {tok}"}

        def xml(operation: str, inner: str) -> str:
            document = f"<Envelope><Body><{operation}>{inner}</{operation}></Body></Envelope>"
            return requests.post(
                f"{host}/XMLAPI", data={"xml": document}, headers=auth, timeout=10
            ).text

        job_id = xml("RawRecipientDataExport", rrde_inner()).split("<JOB_ID>")[1].split("<")[0]
        for _ in range(4):  # by polls: COMPLETE at the third
            status = xml("GetJobStatus", f"<JOB_ID>{job_id}</JOB_ID>")
            assert "<JOB_STATUS>RUNNING</JOB_STATUS>" in status
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert process.returncode == 0


# ------------------------------------------------------------------------------ one lifecycle
def _hello(environ: Any, start_response: Any) -> Any:
    return Response("hello")(environ, start_response)


MAKERS: dict[str, Callable[[Path, int], ThreadedServer]] = {
    "http": lambda root, port: HttpServer(_hello, port=port),
    "ftp": lambda root, port: FtpServer(root, "u", "p", port=port),
    "ftps": lambda root, port: FtpServer(root, "u", "p", tls=True, port=port),
    "sftp": lambda root, port: SftpServer(root, "u", "p", port=port),
}


def _accepts(port: int) -> bool:
    """Whether a server answers on `port` (its greeting read, so it saw us before we leave)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # FTP and SSH greet first anyway
            return bool(sock.recv(64))
    except ConnectionRefusedError:
        return False


def _sandbox_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("sandbox-")}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_every_server_starts_stops_and_restarts_the_same_way(kind: str, tmp_path: Path) -> None:
    before = _sandbox_threads()
    server = MAKERS[kind](tmp_path, 0)
    with server as same:
        assert same is server
        assert server.running
        port = server.port
        assert port != 0
        assert server.start() is server  # already serving: nothing changes
        assert server.port == port
        assert _accepts(port)
    assert not server.running
    assert not _accepts(port)
    server.stop()  # stopping twice is harmless
    server.start()
    try:
        assert _accepts(server.port)
    finally:
        server.stop()
    assert _sandbox_threads() == before


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_server_that_cannot_bind_leaves_nothing_running(
    kind: str, tmp_path: Path, busy_port: int
) -> None:
    before = _sandbox_threads()
    server = MAKERS[kind](tmp_path, busy_port)
    with pytest.raises(OSError):  # noqa: PT011 - the OS words it
        server.start()
    assert not server.running
    assert _sandbox_threads() == before


def test_a_sandbox_that_cannot_start_stops_what_it_started(tmp_path: Path, busy_port: int) -> None:
    before = _sandbox_threads()
    box = Sandbox(tmp_path / "box", ports=SandboxPorts(ftps=busy_port))
    with pytest.raises(OSError):  # noqa: PT011
        box.start()
    assert not any(s.running for s in (box.http, box.sftp, box.ftp, box.ftps))
    assert _sandbox_threads() == before
