"""The whole local vendor sandbox: every vendor's API plus the file sites, on 127.0.0.1.

Tests start one on free ports; the newcomer's demo (`python -m vendor_sandbox serve`) starts one on
fixed ports so meltano.yml can point at it. The sandbox knows the ground truth of everything it
serves, so a sync can be checked record for record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from vendor_sandbox.exacttarget.api import ExactTargetApi
from vendor_sandbox.exacttarget.data import KINDS as EXACTTARGET_KINDS
from vendor_sandbox.exacttarget.data import ExactTargetDataset, ExactTargetDataSpec
from vendor_sandbox.servers.faults import DownloadFaults
from vendor_sandbox.servers.ftp import FtpServer
from vendor_sandbox.servers.http import HttpServer
from vendor_sandbox.servers.sftp import SftpServer

EXACTTARGET_PATH = "/exacttarget/integrate.aspx"


@dataclass(frozen=True)
class SandboxPorts:
    """Fixed ports for the demo (0 = any free port, as tests use)."""

    http: int = 0
    ftp: int = 0
    ftps: int = 0
    sftp: int = 0


DEMO_PORTS = SandboxPorts(http=18080, ftp=18021, ftps=18990, sftp=18022)


@dataclass(frozen=True)
class SandboxCredentials:
    """What the sandbox accepts. Tests pass their own to search output for them."""

    et_username: str = "sandbox-et-user"
    et_password: str = "sandbox-et-pass-7d1c"
    file_username: str = "sandbox-files"
    file_password: str = "sandbox-files-pass-42ab"


class _Router:
    """Send each request to the vendor app that owns its path."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, Callable[..., Iterable[bytes]]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        for prefix, app in self.routes:
            if path.startswith(prefix):
                return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such sandbox endpoint"]


class Sandbox:
    """Start and stop every sandbox server; hand out tap configs and ground truth."""

    SEND_LOOKBACK_DAYS = 14
    # The account zone the generated local times are meant in (the vendor's default).
    ET_TIMEZONE = "America/Chicago"

    def __init__(
        self,
        root: Path,
        *,
        exacttarget: ExactTargetDataSpec | None = None,
        credentials: SandboxCredentials | None = None,
        ports: SandboxPorts | None = None,
        inquiries_until_complete: int = 2,
    ) -> None:
        self.root = root
        self.files_root = root / "files"
        self.files_root.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials or SandboxCredentials()
        ports = ports or SandboxPorts()
        creds = self.credentials
        self.download_faults = DownloadFaults()
        self.et_spec = exacttarget or ExactTargetDataSpec()
        self.et_dataset = ExactTargetDataset(self.et_spec)
        self.et_api = ExactTargetApi(
            self.et_dataset,
            self.files_root,
            username=creds.et_username,
            password=creds.et_password,
            inquiries_until_complete=inquiries_until_complete,
        )
        router = _Router()
        router.routes.append(("/exacttarget/", self.et_api))
        self.http = HttpServer(router, port=ports.http)
        self.sftp = SftpServer(
            self.files_root,
            creds.file_username,
            creds.file_password,
            faults=self.download_faults,
            port=ports.sftp,
        )
        self.ftp = FtpServer(
            self.files_root,
            creds.file_username,
            creds.file_password,
            faults=self.download_faults,
            port=ports.ftp,
        )
        self.ftps = FtpServer(
            self.files_root,
            creds.file_username,
            creds.file_password,
            tls=True,
            cert_dir=root,
            faults=self.download_faults,
            port=ports.ftps,
        )
        self.known_hosts = root / "known_hosts"

    def start(self) -> Sandbox:
        """Start every server (HTTP, SFTP, FTP, FTPS)."""
        for server in (self.http, self.sftp, self.ftp, self.ftps):
            server.start()
        self.sftp.write_known_hosts(self.known_hosts)
        return self

    def stop(self) -> None:
        """Stop every server, closing client connections."""
        for server in (self.ftps, self.ftp, self.sftp, self.http):
            server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- configs and truth ----------------------------------------------------------------------

    def exacttarget_config(self, protocol: str = "sftp", **overrides: Any) -> dict[str, Any]:
        """The tap's `exacttarget` settings for this sandbox, fast polling for tests."""
        creds = self.credentials
        port = {"sftp": self.sftp.port, "ftp": self.ftp.port, "ftps": self.ftps.port}[protocol]
        config: dict[str, Any] = {
            "username": creds.et_username,
            "password": creds.et_password,
            "endpoint": self.http.url + EXACTTARGET_PATH,
            "file_protocol": protocol,
            "file_host": "127.0.0.1",
            "file_port": port,
            "file_username": creds.file_username,
            "file_password": creds.file_password,
            "file_folder": "/",
            "sftp_known_hosts_file": str(self.known_hosts),
            "send_lookback_days": self.SEND_LOOKBACK_DAYS,
            "lookback_days": 1,
            "timezone": self.ET_TIMEZONE,
            "poll_interval_seconds": 0.01,
            "poll_max_interval_seconds": 0.05,
            "job_deadline_seconds": 30,
            "request_timeout_seconds": 10,
            "max_attempts": 3,
        }
        if self.ftps.ca_file is not None:
            config["file_tls_ca_file"] = str(self.ftps.ca_file)
        config.update(overrides)
        return config

    def tap_config(self, protocol: str = "sftp", **exacttarget: Any) -> dict[str, Any]:
        """A complete tap config covering the sandbox's whole data range."""
        return {
            "start_date": self.et_spec.start.isoformat(),
            "end_date": self.et_spec.end.isoformat(),
            "exacttarget": self.exacttarget_config(protocol, **exacttarget),
        }

    def exacttarget_ranges(self) -> dict[str, Any]:
        """The activity and send ranges a full sync of the sandbox covers."""
        spec = self.et_spec
        return {
            "activity": (spec.start, spec.end),
            "sends": (spec.start - timedelta(days=self.SEND_LOOKBACK_DAYS), spec.end),
        }

    def exacttarget_truth(self) -> dict[str, list[dict[str, Any]]]:
        """Every record a full sync must deliver, in the sandbox's raw vocabulary."""
        return self.et_dataset.truth(**self.exacttarget_ranges())

    def ground_truth_counts(self) -> dict[str, int]:
        """Rows per tap stream a full sync must deliver."""
        counts = self.et_dataset.counts(**self.exacttarget_ranges())
        return {f"exacttarget_{kind}": counts[kind] for kind in EXACTTARGET_KINDS}
