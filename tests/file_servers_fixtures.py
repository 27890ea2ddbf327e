"""Real SFTP, FTP and FTPS servers over one folder, for the file-transport tests.

Plain helpers (no pytest fixtures) so test modules wrap them in fixtures of the scope they need.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from tap_emailtracking.transports.files import FileSiteSettings
from vendor_sandbox.servers.faults import DownloadFaults
from vendor_sandbox.servers.ftp import FtpServer
from vendor_sandbox.servers.sftp import SftpServer

USERNAME = "files-user"
PASSWORD = "Xq7-file-site-S3CRET"  # distinctive, so tests can search output for it
BIG_NAME = "export.zip"
BIG_SIZE = 5_000_000 + 4321  # not a multiple of any block or request size
SMALL_NAME = "notes.txt"
SMALL_BODY = b"hello from the sandbox\n"
SUBFOLDER = "archive"
SUBFOLDER_FILE = "old.zip"


@dataclass
class FileServers:
    """The three servers, their shared fault switch and the files they serve."""

    root: Path
    faults: DownloadFaults
    sftp: SftpServer
    ftp: FtpServer
    ftps: FtpServer
    known_hosts: Path
    big: bytes

    def settings(
        self, protocol: Literal["ftp", "ftps", "sftp"], **overrides: Any
    ) -> FileSiteSettings:
        """Client settings that reach the server for `protocol` and trust it."""
        servers: dict[str, SftpServer | FtpServer] = {
            "sftp": self.sftp,
            "ftp": self.ftp,
            "ftps": self.ftps,
        }
        server = servers[protocol]
        base = FileSiteSettings(
            protocol=protocol,
            host="127.0.0.1",
            port=server.port,
            username=USERNAME,
            password=PASSWORD,
            timeout_seconds=5.0,
            tls_ca_file=str(self.ftps.ca_file) if protocol == "ftps" else None,
            sftp_known_hosts_file=str(self.known_hosts),
            config_key="acme",
        )
        return replace(base, **overrides)


def write_site_files(root: Path) -> bytes:
    """Fill `root` with a big random file, a small one and a subfolder; return the big one."""
    root.mkdir(parents=True, exist_ok=True)
    big = os.urandom(BIG_SIZE)
    (root / BIG_NAME).write_bytes(big)
    (root / SMALL_NAME).write_bytes(SMALL_BODY)
    (root / SUBFOLDER).mkdir(exist_ok=True)
    (root / SUBFOLDER / SUBFOLDER_FILE).write_bytes(b"PK old")
    return big


@contextmanager
def running_file_servers(workdir: Path) -> Iterator[FileServers]:
    """Start SFTP, FTP and FTPS on free ports over `workdir/site`; stop them all at the end."""
    root = workdir / "site"
    big = write_site_files(root)
    faults = DownloadFaults()
    sftp = SftpServer(root, USERNAME, PASSWORD, faults=faults)
    ftp = FtpServer(root, USERNAME, PASSWORD, faults=faults)
    ftps = FtpServer(root, USERNAME, PASSWORD, tls=True, cert_dir=workdir / "tls", faults=faults)
    with sftp, ftp, ftps:
        known_hosts = sftp.write_known_hosts(workdir / "known_hosts")
        yield FileServers(root, faults, sftp, ftp, ftps, known_hosts, big)
