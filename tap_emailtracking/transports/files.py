"""File sites (FTP, FTPS, SFTP): the protocol-neutral part.

Vendors drop result files on a file site. Every vendor needs the same things from it: a file name
that cannot escape the configured folder, a download streamed to disk that resumes from the bytes
already there after a dropped connection, retries by the shared policy (`retry.py`), a size
check, and errors that say what to do without ever showing the password. This module holds all
of that once; `ftp.py` and `sftp.py` only speak their protocol.
"""

from __future__ import annotations

import errno
import logging
import posixpath
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, TypeVar

from typing_extensions import override

from tap_emailtracking import summary
from tap_emailtracking.errors import (
    AuthenticationError,
    ConfigurationError,
    CorruptFileError,
    RefusedFileNameError,
    RemoteFileMissingError,
    TapEmailTrackingError,
    TransportError,
)
from tap_emailtracking.transports import retry
from tap_emailtracking.transports.retry import RetryPolicy, Sleep, TransientError

logger = logging.getLogger("tap_emailtracking.transports")

Protocol = Literal["ftp", "ftps", "sftp", "http", "https"]
ProgressCallback = Callable[[int, int | None], None]
FailureKind = Literal["retry", "auth", "missing", "denied", "fatal"]

DEFAULT_PORTS: dict[str, int] = {"ftp": 21, "ftps": 21, "sftp": 22, "http": 80, "https": 443}
# What a user may configure as a file site; http(s) sites are opened by vendor code for the result
# URLs their APIs announce (`http_files.py`).
CONFIGURABLE_PROTOCOLS = ("ftp", "ftps", "sftp")
PROGRESS_EVERY_BYTES = 8 * 1024 * 1024
PROGRESS_LOG_SECONDS = 10.0
UNSAFE_ENTRIES = "unsafe file-site entries skipped"  # what the end-of-run summary counts

# Config keys that error messages point users to, as `<vendor>.<key>`: they must match the
# vendors' config schemas. The site's own keys (host, port, user, password, folder) carry the
# vendor's prefix instead of `file_` (`login_prefix`: ExactTarget `file_`, Acoustic `sftp_`).
SETTING_NAMES: dict[str, str] = {
    "protocol": "file_protocol",
    "host": "file_host",
    "port": "file_port",
    "username": "file_username",
    "password": "file_password",
    "folder": "file_folder",
    "timeout_seconds": "request_timeout_seconds",
    "max_attempts": "max_attempts",
    "tls_verify": "file_tls_verify",
    "tls_ca_file": "file_tls_ca_file",
    "sftp_known_hosts_file": "sftp_known_hosts_file",
    "sftp_host_key_check": "sftp_host_key_check",
}
_SITE_KEYS = frozenset({"host", "port", "username", "password", "folder"})

_T = TypeVar("_T")
_E = TypeVar("_E", bound=TapEmailTrackingError)


@dataclass(frozen=True)
class FileSiteSettings:
    """Where a vendor's file site is and how to log in; the password never shows in a repr."""

    protocol: Protocol
    host: str
    username: str
    password: str = field(repr=False)
    port: int | None = None  # default 21 (ftp/ftps) or 22 (sftp)
    folder: str = "/"
    timeout_seconds: float = 60.0
    tls_verify: bool = True  # ftps: verify the server certificate
    tls_ca_file: str | None = None  # ftps: extra CA bundle (e.g. the sandbox's self-signed cert)
    sftp_known_hosts_file: str | None = None  # None means ~/.ssh/known_hosts
    sftp_host_key_check: bool = True  # False = explicit opt-out (sandbox only), logs a warning
    max_attempts: int = 5  # per download, counting resumes after dropped connections
    config_key: str = "files"  # the config object these came from, to name settings in messages
    login_prefix: str = "file_"  # how that object names host, port, username, password, folder

    def setting(self, name: str) -> str:
        """The full config key of a file-site setting, e.g. `exacttarget.file_password`."""
        key = SETTING_NAMES[name]
        if name in _SITE_KEYS:
            key = self.login_prefix + name
        return f"{self.config_key}.{key}"

    @property
    def effective_port(self) -> int:
        """The configured port, or the protocol's default."""
        return self.port if self.port is not None else DEFAULT_PORTS[self.protocol]

    @property
    def url(self) -> str:
        """`protocol://host:port` for messages (no user, no password)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.effective_port}"


@dataclass(frozen=True)
class RemoteFile:
    """One regular file in the site's folder."""

    name: str
    size: int | None
    modified: datetime | None  # aware, UTC


class ShortTransferError(Exception):
    """The server ended a transfer cleanly but early; retried like a drop."""


class _LocalWriteError(Exception):
    """Writing the local file failed: not the network, so never retried."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class DownloadSink:
    """Where a protocol writes a download's bytes, in order.

    `restart` empties the local file, for a server that answers a resume with the whole file
    (HTTP: a 200 to a Range request).
    """

    write: Callable[[bytes], None]
    restart: Callable[[], None]

    def __call__(self, chunk: bytes) -> None:
        self.write(chunk)


class FileSite(ABC):
    """A connection to one vendor's file site; connects lazily and reconnects after a drop.

    Subclasses implement the `_connect` ... `_classify` hooks; retries, resume, progress, size
    checks, name safety and error messages live here so every protocol behaves the same.
    """

    retry_base_seconds = 1.0
    retry_max_seconds = 30.0

    def __init__(
        self,
        settings: FileSiteSettings,
        *,
        vendor: str,
        stream: str | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.settings = settings
        self.vendor = vendor
        self.stream = stream
        self._sleep = sleep
        self._skipped_entries: set[str] = set()

    @override
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.url}, vendor={self.vendor!r})"

    def __enter__(self) -> FileSite:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- protocol hooks

    @abstractmethod
    def _is_connected(self) -> bool:
        """Say whether a usable session exists."""

    @abstractmethod
    def _connect(self) -> None:
        """Open and log in; raise library errors (classified later) or a TapEmailTrackingError."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Drop the session without raising; safe on a dead or half-open connection."""

    @abstractmethod
    def _remote_size(self, path: str) -> int | None:
        """Size of a remote file, or None when the server cannot tell."""

    @abstractmethod
    def _retrieve(self, path: str, offset: int, size: int | None, sink: DownloadSink) -> None:
        """Stream the file from `offset` to its end into `sink`."""

    @abstractmethod
    def _list(self, folder: str) -> list[RemoteFile]:
        """Regular files in `folder`."""

    @abstractmethod
    def _classify(self, exc: Exception) -> FailureKind | None:
        """Map a library error to what to do about it; None means a bug, re-raised as is."""

    # --- public API

    def close(self) -> None:
        """Log out and close the connection; safe to call twice."""
        self._disconnect()

    def list_files(self) -> list[RemoteFile]:
        """Regular files in the configured folder with safe names, sorted by name.

        A listing comes from the server, so it is untrusted: an entry whose name could leave the
        folder or break a command line (`..`, a slash or backslash, CR/LF) is skipped with a
        warning and counted, and the rest are read; one hostile entry must not stop every run.
        """
        folder = self.settings.folder
        files = self._retrying(lambda: self._list(folder), name=None, path=folder)
        safe: list[RemoteFile] = []
        for entry in files:
            if "/" not in entry.name and not unsafe_name(entry.name):
                safe.append(entry)
            elif entry.name not in self._skipped_entries:
                self._skipped_entries.add(entry.name)  # listed again: warned and counted once
                summary.note(self.vendor, UNSAFE_ENTRIES)
                logger.warning(
                    "%s: skipped the entry %r in the folder %r of %s: its name is not a plain "
                    "file name (a '..', slash, backslash or control character); ask the vendor "
                    "to remove or rename it",
                    self._who(),
                    entry.name,
                    folder,
                    self.settings.url,
                )
        return sorted(safe, key=lambda f: f.name)

    def size(self, name: str) -> int | None:
        """The size of `name` (relative to the folder), or None when the server cannot tell."""
        path = self.remote_path(name)
        return self._retrying(lambda: self._remote_size(path), name=name, path=path)

    def download(
        self,
        name: str,
        destination: Path,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Download `name` (relative to the folder) to `destination`; return the bytes written.

        The file is streamed to disk. After a dropped connection the next attempt resumes from
        the bytes already on disk, so a flaky link still finishes a large file.
        """
        path = self.remote_path(name)
        destination = Path(destination)
        self._truncate(destination)
        started = time.monotonic()
        remote_size: int | None = None
        known_size = False
        reported = 0
        last_log = started

        def sink_for(out: BinaryIO, done: int, size: int | None) -> DownloadSink:
            position = done

            def sink(chunk: bytes) -> None:
                nonlocal position, reported, last_log
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _LocalWriteError(exc) from exc
                position += len(chunk)
                if position - reported >= PROGRESS_EVERY_BYTES:
                    reported = position
                    if on_progress is not None:
                        on_progress(position, size)
                    now = time.monotonic()
                    if now - last_log >= PROGRESS_LOG_SECONDS:
                        last_log = now
                        logger.info(
                            "%s: %s %s%s",
                            self._who(),
                            name,
                            _megabytes(position),
                            f" of {_megabytes(size)}" if size is not None else "",
                        )

            def restart() -> None:
                nonlocal position, reported
                try:
                    out.seek(0)
                    out.truncate()
                except OSError as exc:
                    raise _LocalWriteError(exc) from exc
                position = reported = 0

            return DownloadSink(sink, restart)

        def attempt() -> int:
            nonlocal known_size, remote_size
            if not known_size:
                remote_size = self._remote_size(path)
                known_size = True
                logger.info(
                    "%s: downloading %s from %s (%s)",
                    self._who(),
                    name,
                    self.settings.url,
                    _megabytes(remote_size) if remote_size is not None else "size unknown",
                )
            size = remote_size
            offset = self._local_size(destination)
            if size is not None and offset > size:
                logger.warning(
                    "%s: %s on disk is larger than the remote file; starting over",
                    self._who(),
                    name,
                )
                self._truncate(destination)
                offset = 0
            if offset:
                logger.info("%s: resuming %s at byte %d", self._who(), name, offset)
            if size is None or offset < size:
                out = self._open_local(destination)
                try:
                    self._retrieve(path, offset, size, sink_for(out, offset, size))
                finally:
                    self._close_local(out)
            written = self._local_size(destination)
            if size is not None and written < size:
                raise ShortTransferError(f"the transfer ended at byte {written} of {size}")
            if size is not None and written > size:
                raise self._error(
                    CorruptFileError,
                    f"the download of {name!r} has {written} bytes but the site said {size}",
                    subject=self._subject(path),
                    action="the file probably changed while it was read; re-run the sync",
                )
            return written

        written = self._retrying(attempt, name=name, path=path, destination=destination)
        if on_progress is not None:
            on_progress(written, remote_size)
        seconds = max(time.monotonic() - started, 1e-6)
        logger.info(
            "%s: downloaded %s, %d bytes in %.1f s (%.1f MB/s)",
            self._who(),
            name,
            written,
            seconds,
            written / seconds / 1e6,
        )
        return written

    # --- names

    def remote_path(self, name: str) -> str:
        """Join a file name to the folder, refusing any name that could leave the folder.

        Names come from vendor answers, so they are untrusted. A refused name is an unusable
        result: the job that announced it is forgotten and the next run submits it afresh.
        """
        if unsafe_name(name):
            raise self._error(
                RefusedFileNameError,
                f"refused the result file name {name!r}: it must be a relative name inside the "
                f"folder {self.settings.folder!r} (no absolute path, '..', backslash, control "
                "character or segment over 255 bytes), so it is not downloaded",
                action="re-run the sync: the job that announced this name is forgotten and a new "
                "one is submitted; if the vendor announces such a name again, report it to them",
            )
        return posixpath.join(self.settings.folder or ".", name)

    # --- retries and errors

    def _retrying(
        self,
        operation: Callable[[], _T],
        *,
        name: str | None,
        path: str,
        destination: Path | None = None,
    ) -> _T:
        """Run `operation` on a live connection, retrying drops by the shared policy.

        Each failure is classified once: a drop or a short transfer is retried (a download's next
        attempt resumes from the bytes on disk); a refused login, a missing file, a denied read
        or anything fatal ends at once with its own error.
        """

        def attempt() -> _T:
            try:
                if not self._is_connected():
                    self._connect()
                return operation()
            except TapEmailTrackingError:
                self._disconnect()
                raise
            except _LocalWriteError as exc:
                self._disconnect()
                raise self._local_error(destination, exc.error) from exc.error
            except Exception as exc:
                kind: FailureKind | None = (
                    "retry" if isinstance(exc, ShortTransferError) else self._classify(exc)
                )
                if kind is None:
                    self._disconnect()
                    raise
                if kind != "missing":
                    self._disconnect()
                if kind != "retry":
                    raise self._final_error(kind, exc, name=name, path=path) from (
                        None if kind == "auth" else exc
                    )
                raise TransientError(self._describe(exc), cause=exc) from exc

        def give_up(failure: TransientError, attempts: int) -> TransportError:
            assert failure.cause is not None  # noqa: S101 - every TransientError above has one
            on_disk = self._local_size(destination) if destination is not None else 0
            return self._exhausted_error(
                failure.cause, name=name, path=path, attempts=attempts, on_disk=on_disk
            )

        doing = f"downloading {name}" if name is not None else f"listing {path}"
        return retry.call(
            attempt,
            policy=self.retry_policy,
            sleep=self._sleep,
            who=self._who(),
            what=f"{doing} at {self.settings.url}",
            give_up=give_up,
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        """The shared policy, with this site's attempts (downloads count resumes as attempts)."""
        return RetryPolicy(
            max_attempts=self.settings.max_attempts,
            base_delay_seconds=self.retry_base_seconds,
            max_delay_seconds=self.retry_max_seconds,
        )

    def _final_error(
        self, kind: FailureKind, exc: Exception, *, name: str | None, path: str
    ) -> TapEmailTrackingError:
        subject = self._subject(path)
        if kind == "auth":
            return self._error(
                AuthenticationError,
                f"the file site refused the login of user {self.settings.username!r}",
                subject=subject,
                action=f"check {self.settings.setting('username')} / "
                f"{self.settings.setting('password')} (and that this user may use "
                f"{self.settings.protocol.upper()})",
            )
        if kind == "missing":
            what = (
                f"the file {name!r} is not in the folder {self.settings.folder!r}"
                if name is not None
                else f"the folder {self.settings.folder!r} does not exist"
            )
            return self._error(
                RemoteFileMissingError,
                what,
                subject=subject,
                action="the file may have expired from the site (vendors keep result files for a "
                f"limited time) or {self.settings.setting('folder')} is wrong; re-run the "
                "sync: the job that announced it is forgotten and a new one is submitted"
                if name is not None
                else f"check {self.settings.setting('folder')} against what the vendor "
                "gave you, then re-run the sync",
            )
        if kind == "denied":
            return self._error(
                AuthenticationError,
                f"the site does not let user {self.settings.username!r} read "
                f"{name if name is not None else self.settings.folder!r}: {self._describe(exc)}",
                subject=subject,
                action="ask the vendor to grant this user read access to the folder, or fix "
                f"{self.settings.setting('folder')}",
            )
        return self._error(
            TransportError,
            f"the file site refused the request: {self._describe(exc)}",
            subject=subject,
            action=f"check {self.settings.setting('protocol')}, {self.settings.setting('host')} "
            f"and {self.settings.setting('port')} against what the vendor gave you",
        )

    def _exhausted_error(
        self, exc: BaseException, *, name: str | None, path: str, attempts: int, on_disk: int
    ) -> TransportError:
        doing = f"downloading {name!r}" if name is not None else "listing the folder"
        got = f" ({on_disk} bytes were on disk)" if name is not None else ""
        return self._error(
            TransportError,
            f"{doing} failed {attempts} times in a row{got}; last error: {self._describe(exc)}",
            subject=self._subject(path),
            action=f"check that {self.settings.url} is reachable from this machine (host, port, "
            "firewall, VPN) and re-run the sync; on a slow or flaky link raise "
            f"{self.settings.setting('timeout_seconds')} or "
            f"{self.settings.setting('max_attempts')}",
        )

    def _describe(self, exc: BaseException) -> str:
        """One safe line about a library error: class and text, password scrubbed, capped."""
        text = " ".join(str(exc).split()).rstrip(" :")
        password = self.settings.password
        if password:
            text = text.replace(password, "***")
        text = text[:300]
        kind = type(exc).__name__
        return f"{kind}: {text}" if text else kind

    def _subject(self, path: str) -> str:
        return f"{self.settings.url}{'' if path.startswith('/') else '/'}{path}"

    def _error(self, kind: type[_E], what: str, *, action: str, subject: str | None = None) -> _E:
        """An error of this site: its vendor and stream, and the site's URL unless told."""
        return kind(
            what,
            vendor=self.vendor,
            stream=self.stream,
            subject=self.settings.url if subject is None else subject,
            action=action,
        )

    def _who(self) -> str:
        return self.vendor if self.stream is None else f"{self.vendor}/{self.stream}"

    # --- local file

    def _local_error(self, destination: Path | None, exc: OSError) -> TapEmailTrackingError:
        if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL):
            # The local file system refuses the name itself: every run would fail the same way.
            return self._error(
                RefusedFileNameError,
                f"refused the result file name: the local file {destination} cannot be "
                f"created ({exc.strerror})",
                action="re-run the sync: the job that announced this name is forgotten and a new "
                "one is submitted; if the vendor announces such a name again, report it to them",
            )
        return self._error(
            TapEmailTrackingError,
            f"could not write the download to {destination}: {exc}",
            action="free disk space in the temporary folder (or point TMPDIR elsewhere) and re-run",
        )

    def _truncate(self, destination: Path) -> None:
        try:
            destination.open("wb").close()  # a fresh download starts from an empty file
        except OSError as exc:
            raise self._local_error(destination, exc) from exc

    def _local_size(self, destination: Path | None) -> int:
        if destination is None:
            return 0
        try:
            return destination.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._local_error(destination, exc) from exc

    def _open_local(self, destination: Path) -> BinaryIO:
        try:
            return destination.open("ab")
        except OSError as exc:
            raise self._local_error(destination, exc) from exc

    def _close_local(self, out: BinaryIO) -> None:
        try:
            out.close()
        except OSError as exc:
            raise _LocalWriteError(exc) from exc


def unsafe_name(name: str) -> bool:
    """Whether a name from a vendor or a server could leave the folder or break a command.

    Refused: empty, absolute, a `.`/`..` or empty segment, a backslash (a separator on some
    servers), a control character (FTP commands are lines, so CR/LF could add a command), or a
    segment over NAME_MAX bytes or a name over MAX_NAME_BYTES in UTF-8: no local file can hold
    such a name, so every run would fail on it the same way.
    """
    parts = name.split("/")
    return (
        not name
        or name.startswith("/")
        or "\\" in name
        or any(ord(c) < 32 or c == "\x7f" for c in name)
        or any(part in ("", ".", "..") for part in parts)
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
        or any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in parts)
    )


NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)
MAX_NAME_BYTES = 1024  # a whole relative name: far above any vendor's, far below PATH_MAX


def _megabytes(size: int | None) -> str:
    return "? MB" if size is None else f"{size / 1e6:.1f} MB"


def open_file_site(
    settings: FileSiteSettings,
    *,
    vendor: str,
    stream: str | None = None,
    sleep: Sleep = time.sleep,
) -> FileSite:
    """Check the settings and return a (not yet connected) client for the site's protocol."""

    def bad(what: str, setting: str) -> ConfigurationError:
        return ConfigurationError(
            what,
            vendor=vendor,
            stream=stream,
            subject=settings.setting(setting),
            action=f"fix {settings.setting(setting)} in the config",
        )

    if settings.protocol not in CONFIGURABLE_PROTOCOLS:
        raise bad(
            f"unknown file-site protocol {settings.protocol!r} (use ftp, ftps or sftp)", "protocol"
        )
    if not settings.host:
        raise bad("the file-site host is empty", "host")
    if not 0 < settings.effective_port < 65536:
        raise bad(f"the file-site port {settings.port} is not between 1 and 65535", "port")
    if not settings.username:
        raise bad("the file-site user name is empty", "username")
    if settings.timeout_seconds <= 0:
        raise bad("the file-site timeout must be more than 0 seconds", "timeout_seconds")
    if settings.max_attempts < 1:
        raise bad("the file-site max_attempts must be at least 1", "max_attempts")
    # Imported here: the protocol modules import this one, and FTP users need no paramiko.
    if settings.protocol == "sftp":
        from tap_emailtracking.transports.sftp import SftpFileSite  # noqa: PLC0415

        return SftpFileSite(settings, vendor=vendor, stream=stream, sleep=sleep)
    from tap_emailtracking.transports.ftp import FtpFileSite  # noqa: PLC0415

    return FtpFileSite(settings, vendor=vendor, stream=stream, sleep=sleep)
