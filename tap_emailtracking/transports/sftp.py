"""SFTP file sites (paramiko).

Only the protocol lives here; retries, resume, names and messages are in `files.py`. Host keys are
checked against a known_hosts file by default (an unknown key is refused, never trusted on first
use). Downloads use paramiko's prefetch with its default concurrency, which measured fastest and
steadiest; resume is `seek(offset)` then `prefetch(total_size)` (prefetch takes the *total* size).
The socket has TCP_NODELAY (paramiko leaves Nagle's algorithm on): every SFTP open, stat and close
is a small request waiting for its answer, and Nagle with delayed ACKs stalled each by tens of
milliseconds, which made a folder of 42 BEX files download three times slower on loopback.
AES-GCM is asked for first (`FastCipherTransport`): paramiko's default, AES-CTR with a separate
HMAC, downloaded 41 MB/s on loopback against 56 MB/s with AES-GCM; a server without it gets
paramiko's usual list.
"""

from __future__ import annotations

import contextlib
import socket
import stat
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paramiko
from typing_extensions import override

from tap_emailtracking import cli
from tap_emailtracking.errors import AuthenticationError, ConfigurationError
from tap_emailtracking.transports.files import (
    FailureKind,
    FileSite,
    RemoteFile,
    logger,
)

# paramiko returns at most one 32 KiB request per read; a bigger read only buffers more bytes
# that a drop would throw away before they reach the disk.
_READ_SIZE = 32 * 1024
_DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
# paramiko's thread logs the teardown of an interrupted connect as 20 lines of traceback.
cli.quiet_when_interrupted("paramiko")


class _UnknownHostKeyError(Exception):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RefuseUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Like RejectPolicy, but hands the offered key back so the message can show it."""

    @override
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHostKeyError(key)


class _AcceptAnyHostKey(paramiko.MissingHostKeyPolicy):
    """The explicit opt-out: accept without saving (AutoAddPolicy would write known_hosts)."""

    @override
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        return


GCM_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class FastCipherTransport(paramiko.Transport):
    """paramiko's transport asking for AES-GCM first (an AEAD cipher: no separate MAC pass)."""

    _preferred_ciphers = (
        *GCM_CIPHERS,
        *(c for c in paramiko.Transport._preferred_ciphers if c not in GCM_CIPHERS),  # type: ignore[attr-defined]
    )


def _no_delay(client: paramiko.SSHClient) -> None:
    """Send small SFTP requests at once (see the module docs)."""
    transport = client.get_transport()
    sock = transport.sock if transport is not None else None
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _guard_prefetch_thread(handle: paramiko.SFTPFile) -> None:
    """Keep a dropped connection from surfacing as an unhandled exception in paramiko's thread.

    The prefetch thread sends the read requests; if the server drops mid-way it dies with
    EOFError, printed by threading's excepthook. The reading thread sees the same drop and retries.
    """
    original = getattr(handle, "_prefetch_thread", None)
    if original is None:
        return

    def guarded(*args: Any) -> None:
        with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
            original(*args)

    handle._prefetch_thread = guarded  # type: ignore[attr-defined]


class SftpFileSite(FileSite):
    """A vendor's SFTP site, logged in with a password."""

    _client: paramiko.SSHClient | None = None
    _sftp: paramiko.SFTPClient | None = None

    @override
    def _is_connected(self) -> bool:
        return self._sftp is not None

    def _known_hosts(self) -> Path:
        return Path(self.settings.sftp_known_hosts_file or _DEFAULT_KNOWN_HOSTS).expanduser()

    @override
    def _connect(self) -> None:
        s = self.settings
        timeout = s.timeout_seconds
        known_hosts = self._known_hosts()
        client = paramiko.SSHClient()
        try:
            if s.sftp_host_key_check:
                self._load_known_hosts(client, known_hosts)
                client.set_missing_host_key_policy(_RefuseUnknownHostKey())
            else:
                logger.warning(
                    "%s: the SSH host key of %s is NOT checked (%s is false): a "
                    "man-in-the-middle could read the data and the password; use this only for "
                    "a local sandbox",
                    self._who(),
                    s.url,
                    s.setting("sftp_host_key_check"),
                )
                client.set_missing_host_key_policy(_AcceptAnyHostKey())
            client.connect(
                s.host,
                port=s.effective_port,
                username=s.username,
                password=s.password,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                look_for_keys=False,
                allow_agent=False,
                # The stubs miss Transport's gss_* keywords, which paramiko passes.
                transport_factory=FastCipherTransport,  # type: ignore[arg-type]
            )
            _no_delay(client)
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(timeout)  # a stalled server becomes an error, not a hang
        except _UnknownHostKeyError as exc:
            client.close()
            raise self._host_key_error(exc.key, known_hosts, changed=False) from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise self._host_key_error(exc.key, known_hosts, changed=True) from None
        except BaseException:
            client.close()
            raise
        self._client, self._sftp = client, sftp
        logger.info("%s: connected to %s as %r", self._who(), s.url, s.username)

    def _load_known_hosts(self, client: paramiko.SSHClient, known_hosts: Path) -> None:
        try:
            client.load_host_keys(str(known_hosts))
        except FileNotFoundError:
            if self.settings.sftp_known_hosts_file is not None:
                raise self._error(
                    ConfigurationError,
                    f"the known_hosts file {str(known_hosts)!r} does not exist",
                    action=f"fix {self.settings.setting('sftp_known_hosts_file')}, or "
                    "create the file with the site's host key",
                ) from None
            # No ~/.ssh/known_hosts: nothing is trusted, so the unknown-key error explains.
        except (OSError, paramiko.SSHException) as exc:
            raise self._error(
                ConfigurationError,
                f"cannot read the known_hosts file {str(known_hosts)!r}: {self._describe(exc)}",
                action=f"fix the file or {self.settings.setting('sftp_known_hosts_file')}",
            ) from exc

    def _host_key_error(
        self, key: paramiko.PKey, known_hosts: Path, *, changed: bool
    ) -> AuthenticationError:
        s = self.settings
        port = s.effective_port
        offered = f"{key.get_name()} {key.fingerprint}"
        host_pattern = s.host if port == 22 else f"[{s.host}]:{port}"
        what = (
            f"the SSH host key of {host_pattern} ({offered}) DIFFERS from the one in "
            f"{known_hosts}: the server was replaced or someone is in between"
            if changed
            else f"the SSH host key of {host_pattern} ({offered}) is not in {known_hosts}"
        )
        return self._error(
            AuthenticationError,
            what,
            action=f"confirm the fingerprint with the vendor, then add the key to {known_hosts} "
            f"(e.g. `ssh-keyscan -p {port} {s.host} >> {known_hosts}`) or point "
            f"{s.setting('sftp_known_hosts_file')} at a file that has it; for "
            f"a local sandbox only, set {s.setting('sftp_host_key_check')} "
            "to false",
        )

    @override
    def _disconnect(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if client is not None:
            client.close()

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise ConnectionError("not connected")  # retried: reconnects
        return self._sftp

    @override
    def _remote_size(self, path: str) -> int | None:
        attrs = self._session().stat(path)
        if attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
            raise FileNotFoundError(path)  # a folder is not the file we were promised
        return attrs.st_size

    @override
    def _retrieve(
        self, path: str, offset: int, size: int | None, sink: Callable[[bytes], None]
    ) -> None:
        handle = self._session().open(path, "rb")
        try:
            total = size if size is not None else handle.stat().st_size
            handle.seek(offset)
            _guard_prefetch_thread(handle)
            handle.prefetch(total)  # the TOTAL size: prefetch starts at the seek position
            while chunk := handle.read(_READ_SIZE):
                sink(chunk)
        finally:
            # Closing on a dead connection raises; the drop itself is what gets reported.
            with contextlib.suppress(Exception):
                handle.close()

    @override
    def _list(self, folder: str) -> list[RemoteFile]:
        files = []
        for attrs in self._session().listdir_attr(folder):
            if attrs.st_mode is not None and not stat.S_ISREG(attrs.st_mode):
                continue
            modified = (
                datetime.fromtimestamp(attrs.st_mtime, tz=timezone.utc)
                if attrs.st_mtime is not None
                else None
            )
            files.append(RemoteFile(name=attrs.filename, size=attrs.st_size, modified=modified))
        return files

    @override
    def _classify(self, exc: Exception) -> FailureKind | None:
        if isinstance(exc, paramiko.AuthenticationException):
            return "auth"
        if isinstance(exc, FileNotFoundError):
            return "missing"
        if isinstance(exc, PermissionError):
            return "denied"
        if isinstance(exc, (socket.gaierror, paramiko.ssh_exception.IncompatiblePeer)):
            return "fatal"  # a wrong host name or no common algorithm does not heal by retrying
        if isinstance(exc, (paramiko.SSHException, paramiko.SFTPError, EOFError, OSError)):
            return "retry"  # drops, resets, timeouts, banner and channel errors
        return None
