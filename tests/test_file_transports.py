"""File-site clients (FTP, FTPS, SFTP) against real local servers: no mocks, no real sleeping."""

from __future__ import annotations

import logging
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timezone
from pathlib import Path
from typing import Literal

import asyncssh
import paramiko
import pytest

from tap_emailtracking.errors import (
    AuthenticationError,
    ConfigurationError,
    RefusedFileNameError,
    RemoteFileMissingError,
    TransportError,
    UnusableResultError,
)
from tap_emailtracking.transports.files import FileSite, FileSiteSettings, open_file_site
from tap_emailtracking.transports.ftp import FtpFileSite
from tap_emailtracking.transports.sftp import GCM_CIPHERS, FastCipherTransport
from vendor_sandbox.servers.ftp import FtpServer
from vendor_sandbox.servers.http import HttpServer
from vendor_sandbox.servers.sftp import SftpServer

from .file_servers_fixtures import (
    BIG_NAME,
    BIG_SIZE,
    PASSWORD,
    SMALL_BODY,
    SMALL_NAME,
    SUBFOLDER,
    SUBFOLDER_FILE,
    FileServers,
    running_file_servers,
)

PROTOCOLS: list[Literal["ftp", "ftps", "sftp"]] = ["ftp", "ftps", "sftp"]
VENDOR = "acme"
STREAM = "opens"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServers]:
    with running_file_servers(tmp_path_factory.mktemp("file-servers")) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_faults(servers: FileServers) -> Iterator[None]:
    servers.faults.reset()
    yield
    servers.faults.reset()


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the client asked for; nothing really sleeps."""
    return []


def site_for(settings: FileSiteSettings, sleeps: list[float]) -> FileSite:
    return open_file_site(settings, vendor=VENDOR, stream=STREAM, sleep=sleeps.append)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_download_is_byte_identical(
    servers: FileServers, protocol: Literal["ftp", "ftps", "sftp"], tmp_path: Path
) -> None:
    progress: list[tuple[int, int | None]] = []
    target = tmp_path / "out.zip"
    with site_for(servers.settings(protocol), []) as site:
        written = site.download(
            BIG_NAME, target, on_progress=lambda done, total: progress.append((done, total))
        )
        small = site.download(SMALL_NAME, tmp_path / "small.txt")  # same connection
    assert written == BIG_SIZE
    assert target.read_bytes() == servers.big
    assert small == len(SMALL_BODY)
    assert (tmp_path / "small.txt").read_bytes() == SMALL_BODY
    assert progress[-1] == (BIG_SIZE, BIG_SIZE)
    assert servers.faults.downloads_started == 2
    assert servers.faults.resumed_downloads == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_list_files_gives_names_sizes_and_utc_times(
    servers: FileServers, protocol: Literal["ftp", "ftps", "sftp"]
) -> None:
    with site_for(servers.settings(protocol), []) as site:
        files = site.list_files()
    assert [(f.name, f.size) for f in files] == [
        (BIG_NAME, BIG_SIZE),
        (SMALL_NAME, len(SMALL_BODY)),
    ]  # the subfolder is not a file
    assert all(f.modified is not None and f.modified.tzinfo == timezone.utc for f in files)


def test_ftp_listing_without_mlsd_falls_back_to_nlst(servers: FileServers) -> None:
    site = site_for(servers.settings("ftp"), [])
    assert isinstance(site, FtpFileSite)
    with site:
        site._connect()
        files = site._list_nlst("/")
    assert [(f.name, f.size) for f in files] == [
        (BIG_NAME, BIG_SIZE),
        (SMALL_NAME, len(SMALL_BODY)),
    ]
    assert all(f.modified is not None for f in files)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_download_from_a_subfolder(
    servers: FileServers, protocol: Literal["ftp", "ftps", "sftp"], tmp_path: Path
) -> None:
    settings = servers.settings(protocol, folder=f"/{SUBFOLDER}")
    with site_for(settings, []) as site:
        assert [f.name for f in site.list_files()] == [SUBFOLDER_FILE]
        site.download(SUBFOLDER_FILE, tmp_path / "old.zip")
    assert (tmp_path / "old.zip").read_bytes() == b"PK old"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dropped_download_resumes_where_it_stopped(
    servers: FileServers,
    protocol: Literal["ftp", "ftps", "sftp"],
    tmp_path: Path,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tap_emailtracking.transports")
    servers.faults.arm(drop_after_bytes=1_000_000, times=2)
    target = tmp_path / "out.zip"
    with site_for(servers.settings(protocol), sleeps) as site:
        assert site.download(BIG_NAME, target) == BIG_SIZE
    assert target.read_bytes() == servers.big
    assert servers.faults.downloads_started == 3
    assert servers.faults.resumed_downloads >= 1  # continued, not restarted from zero
    assert len(sleeps) == 2
    assert "resuming export.zip at byte" in caplog.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_drops_beyond_max_attempts_fail_loudly(
    servers: FileServers,
    protocol: Literal["ftp", "ftps", "sftp"],
    tmp_path: Path,
    sleeps: list[float],
) -> None:
    servers.faults.arm(drop_after_bytes=1_000_000, times=10)
    settings = servers.settings(protocol, max_attempts=3)
    with site_for(settings, sleeps) as site, pytest.raises(TransportError) as caught:
        site.download(BIG_NAME, tmp_path / "out.zip")
    text = str(caught.value)
    assert VENDOR in text
    assert STREAM in text
    assert BIG_NAME in text
    assert f"{protocol}://127.0.0.1:{settings.port}" in text
    assert "failed 3 times" in text
    assert servers.faults.downloads_started == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1  # full jitter: anywhere under 1 s, then under 2 s
    assert 0 <= sleeps[1] <= 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_password_is_an_authentication_error_without_the_password(
    servers: FileServers,
    protocol: Literal["ftp", "ftps", "sftp"],
    tmp_path: Path,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-" + PASSWORD
    settings = servers.settings(protocol, password=wrong)
    with site_for(settings, sleeps) as site, pytest.raises(AuthenticationError) as caught:
        site.download(BIG_NAME, tmp_path / "out.zip")
    error = caught.value
    assert "acme.file_username / acme.file_password" in str(error)
    assert f"{protocol}://127.0.0.1:{settings.port}" in str(error)
    for secret in (wrong, PASSWORD):
        assert secret not in str(error)
        assert secret not in repr(error)
        assert secret not in caplog.text
        assert secret not in repr(settings)
    assert error.__cause__ is None  # the library's exception is not chained into tracebacks
    assert sleeps == []  # a refused login is not retried


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_missing_file_says_it_may_have_expired(
    servers: FileServers,
    protocol: Literal["ftp", "ftps", "sftp"],
    tmp_path: Path,
    sleeps: list[float],
) -> None:
    with site_for(servers.settings(protocol), sleeps) as site:
        with pytest.raises(RemoteFileMissingError) as caught:
            site.download("gone.zip", tmp_path / "gone.zip")
        assert site.download(SMALL_NAME, tmp_path / "small.txt") == len(SMALL_BODY)  # still usable
    text = str(caught.value)
    assert "gone.zip" in text
    assert "expired" in text
    assert sleeps == []


@pytest.mark.parametrize(
    "name",
    ["../etc/passwd", "/etc/passwd", "a/../../b", "..", ".", "", "a\\..\\b", "x\r\nDELE y", "a//b"],
)
def test_unsafe_names_are_refused_before_connecting(
    servers: FileServers, name: str, tmp_path: Path, sleeps: list[float]
) -> None:
    settings = servers.settings("sftp", port=1)  # nothing listens there: no connection is tried
    with site_for(settings, sleeps) as site, pytest.raises(RefusedFileNameError) as caught:
        site.download(name, tmp_path / "out")
    assert isinstance(caught.value, UnusableResultError)  # the job is forgotten, not kept
    assert "refused the result file name" in str(caught.value)
    assert "a new one is submitted" in str(caught.value)
    assert not (tmp_path / "out").exists()
    assert sleeps == []


def test_sftp_unknown_host_key_is_refused_with_what_to_do(
    servers: FileServers, tmp_path: Path, sleeps: list[float]
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = servers.settings("sftp", sftp_known_hosts_file=str(empty))
    with site_for(settings, sleeps) as site, pytest.raises(AuthenticationError) as caught:
        site.list_files()
    text = str(caught.value)
    assert "is not in" in text
    assert str(empty) in text
    assert "ssh-ed25519 SHA256:" in text
    assert "acme.sftp_host_key_check" in text
    assert empty.read_text() == ""  # nothing was trusted on first use
    assert sleeps == []


def test_sftp_changed_host_key_is_refused(
    servers: FileServers, tmp_path: Path, sleeps: list[float]
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    key_type, key_data = other.export_public_key("openssh").decode().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{servers.sftp.port} {key_type} {key_data}\n")
    settings = servers.settings("sftp", sftp_known_hosts_file=str(known))
    with site_for(settings, sleeps) as site, pytest.raises(AuthenticationError) as caught:
        site.list_files()
    assert "DIFFERS" in str(caught.value)


def test_sftp_missing_known_hosts_file_is_a_configuration_error(
    servers: FileServers, tmp_path: Path
) -> None:
    settings = servers.settings("sftp", sftp_known_hosts_file=str(tmp_path / "nope"))
    with site_for(settings, []) as site, pytest.raises(ConfigurationError) as caught:
        site.list_files()
    assert "acme.sftp_known_hosts_file" in str(caught.value)


def test_sftp_host_key_opt_out_works_and_warns(
    servers: FileServers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tap_emailtracking.transports")
    unused = tmp_path / "known_hosts"
    settings = servers.settings(
        "sftp", sftp_host_key_check=False, sftp_known_hosts_file=str(unused)
    )
    with site_for(settings, []) as site:
        site.download(SMALL_NAME, tmp_path / "small.txt")
    assert (tmp_path / "small.txt").read_bytes() == SMALL_BODY
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("NOT checked" in r.getMessage() for r in warnings)
    assert not unused.exists()  # the accepted key is not written anywhere


def test_ftps_untrusted_certificate_fails_without_retrying(
    servers: FileServers, tmp_path: Path, sleeps: list[float]
) -> None:
    settings = servers.settings("ftps", tls_ca_file=None)
    with site_for(settings, sleeps) as site, pytest.raises(TransportError) as caught:
        site.download(SMALL_NAME, tmp_path / "small.txt")
    assert "certificate did not verify" in str(caught.value)
    assert "acme.file_tls_ca_file" in str(caught.value)
    assert sleeps == []


def test_ftps_verification_opt_out_works_and_warns(
    servers: FileServers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = servers.settings("ftps", tls_ca_file=None, tls_verify=False)
    with site_for(settings, []) as site:
        site.download(SMALL_NAME, tmp_path / "small.txt")
    assert (tmp_path / "small.txt").read_bytes() == SMALL_BODY
    assert any(
        r.levelno == logging.WARNING and "NOT verified" in r.getMessage() for r in caplog.records
    )


def test_plain_ftp_against_an_ftps_only_site_says_to_use_ftps(
    servers: FileServers, tmp_path: Path, sleeps: list[float]
) -> None:
    settings = servers.settings("ftp", port=servers.ftps.port)
    with site_for(settings, sleeps) as site, pytest.raises(TransportError) as caught:
        site.list_files()
    assert "needs ftps" in str(caught.value)
    assert sleeps == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unreachable_site_is_retried_then_reported(
    protocol: Literal["ftp", "ftps", "sftp"], tmp_path: Path, sleeps: list[float]
) -> None:
    settings = FileSiteSettings(
        protocol=protocol,
        host="127.0.0.1",
        port=1,  # nothing listens: connection refused
        username="u",
        password=PASSWORD,
        max_attempts=3,
        timeout_seconds=2,
    )
    with site_for(settings, sleeps) as site, pytest.raises(TransportError) as caught:
        site.download(BIG_NAME, tmp_path / "out.zip")
    assert f"{protocol}://127.0.0.1:1" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert len(sleeps) == 2


def test_settings_are_checked_before_connecting() -> None:
    settings = FileSiteSettings(
        protocol="sftp", host="", username="u", password=PASSWORD, config_key="acme"
    )
    with pytest.raises(ConfigurationError, match=r"acme\.file_host"):
        open_file_site(settings, vendor=VENDOR)
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stopping_the_server_under_a_connected_client_does_not_hang(
    protocol: Literal["ftp", "ftps", "sftp"], tmp_path: Path, sleeps: list[float]
) -> None:
    with running_file_servers(tmp_path) as own:
        site = site_for(own.settings(protocol, max_attempts=2, timeout_seconds=2), sleeps)
        assert site.download(SMALL_NAME, tmp_path / "small.txt") == len(SMALL_BODY)
    started = time.monotonic()
    with site, pytest.raises(TransportError):
        site.download(SMALL_NAME, tmp_path / "again.txt")  # dead session, then refused
    assert time.monotonic() - started < 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_servers_start_on_fixed_ports(tmp_path: Path) -> None:
    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    root = tmp_path / "site"
    root.mkdir()
    (root / SMALL_NAME).write_bytes(SMALL_BODY)
    sftp_port, ftp_port, http_port = _free_port(), _free_port(), _free_port()
    with (
        SftpServer(root, "u", "p", port=sftp_port) as sftp,
        FtpServer(root, "u", "p", port=ftp_port) as ftp,
        HttpServer(app, port=http_port) as http,
    ):
        assert (sftp.port, ftp.port, http.port) == (sftp_port, ftp_port, http_port)
        assert sftp.known_hosts_line.startswith(f"[127.0.0.1]:{sftp_port} ssh-ed25519 ")
        with urllib.request.urlopen(f"{http.url}/anything", timeout=5) as answer:  # noqa: S310
            assert answer.read() == b"ok"
        settings = FileSiteSettings(
            protocol="ftp", host="127.0.0.1", port=ftp_port, username="u", password="p"
        )
        with site_for(settings, []) as site:
            assert [f.name for f in site.list_files()] == [SMALL_NAME]


def test_sftp_sends_small_requests_without_waiting_nagle_off(servers: FileServers) -> None:
    """TCP_NODELAY on the SSH socket: opens, stats and closes are not held back by Nagle."""
    with site_for(servers.settings("sftp"), []) as site:
        site.list_files()
        transport = site._client.get_transport()  # type: ignore[attr-defined]
        sock = transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_sftp_asks_for_aes_gcm_first(servers: FileServers, tmp_path: Path) -> None:
    """AES-GCM when the server offers it (faster downloads, see transports/sftp.py)."""
    with site_for(servers.settings("sftp"), []) as site:
        site.download(SMALL_NAME, tmp_path / "small.txt")
        client = site._client  # type: ignore[attr-defined]
        transport = client.get_transport()
        assert isinstance(transport, FastCipherTransport)
        assert (transport.local_cipher, transport.remote_cipher) == (
            "aes128-gcm@openssh.com",
            "aes128-gcm@openssh.com",
        )
    assert FastCipherTransport._preferred_ciphers[:2] == GCM_CIPHERS
    rest = [c for c in paramiko.Transport._preferred_ciphers if c not in GCM_CIPHERS]  # type: ignore[attr-defined]
    assert list(FastCipherTransport._preferred_ciphers[2:]) == rest  # nothing else dropped
