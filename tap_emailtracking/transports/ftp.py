"""FTP and explicit FTPS file sites (ftplib, passive mode).

Only the protocol lives here; retries, resume, names and messages are in `files.py`. Known ftplib
traps handled: `SIZE` is refused in ASCII mode (send `TYPE I` first), FTPS needs `prot_p()` or the
data channel stays in clear text, and resume is `REST` via `retrbinary(..., rest=offset)`.
"""

from __future__ import annotations

import contextlib
import ftplib
import posixpath
import socket
import ssl
from collections.abc import Callable
from datetime import datetime, timezone

from typing_extensions import override

from tap_emailtracking.errors import ConfigurationError, TransportError
from tap_emailtracking.transports.files import (
    FailureKind,
    FileSite,
    RemoteFile,
    logger,
    unsafe_name,
)

_QUIT_TIMEOUT_SECONDS = 5.0


def _reply_code(exc: ftplib.Error) -> str:
    return str(exc)[:3]


def _parse_ftp_time(value: str) -> datetime | None:
    """Parse `YYYYMMDDHHMMSS[.fff]` (MLSD `modify`, MDTM): UTC by RFC 3659."""
    try:
        parsed = datetime.strptime(value.strip()[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc)


class FtpFileSite(FileSite):
    """A vendor's FTP or explicit-FTPS site."""

    blocksize = 64 * 1024

    _ftp: ftplib.FTP | None = None

    @override
    def _is_connected(self) -> bool:
        return self._ftp is not None

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.create_default_context()
        if not s.tls_verify:
            logger.warning(
                "%s: the FTPS certificate of %s is NOT verified (%s is false): anyone on "
                "the path could read the data and the password; use this only for a local sandbox",
                self._who(),
                s.url,
                s.setting("tls_verify"),
            )
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif s.tls_ca_file:
            # Added to, not instead of, the system CAs.
            try:
                context.load_verify_locations(cafile=s.tls_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise self._error(
                    ConfigurationError,
                    f"cannot load the CA file {s.tls_ca_file!r}: {self._describe(exc)}",
                    action=f"point {s.setting('tls_ca_file')} at a readable "
                    "PEM file with the CA certificate(s) of the site",
                ) from exc
        return context

    @override
    def _connect(self) -> None:
        s = self.settings
        ftp: ftplib.FTP
        if s.protocol == "ftps":
            ftp = ftplib.FTP_TLS(context=self._tls_context(), timeout=s.timeout_seconds)  # noqa: S321 - TLS
        else:
            ftp = ftplib.FTP(timeout=s.timeout_seconds)  # noqa: S321 - what the vendor offers
        try:
            ftp.connect(s.host, s.effective_port)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.auth()
            ftp.login(s.username, s.password)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(True)
        except ssl.SSLCertVerificationError as exc:
            ftp.close()
            raise self._error(
                TransportError,
                "the site's TLS certificate did not verify: "
                f"{exc.verify_message or self._describe(exc)}",
                action=f"set {s.setting('tls_ca_file')} to the CA that signed "
                "the site's certificate (ask the vendor), and check that the host name matches "
                "the certificate",
            ) from exc
        except ftplib.error_perm as exc:
            ftp.close()
            if _reply_code(exc) == "530":
                raise  # classified as a refused login, with the settings to check
            raise self._error(
                TransportError,
                f"the site refused to log in: {self._describe(exc)}",
                action=f"check {s.setting('protocol')}: a site that requires "
                "TLS needs ftps, and a plain FTP site rejects ftps",
            ) from exc
        except BaseException:
            ftp.close()
            raise
        self._ftp = ftp
        logger.info(
            "%s: connected to %s as %r%s",
            self._who(),
            s.url,
            s.username,
            " (TLS)" if s.protocol == "ftps" else "",
        )

    @override
    def _disconnect(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            ftp.close()

    @override
    def close(self) -> None:
        """Say QUIT to a healthy session (briefly), then close it."""
        ftp = self._ftp
        if ftp is not None and ftp.sock is not None:
            with contextlib.suppress(OSError, EOFError, ftplib.Error):
                ftp.sock.settimeout(_QUIT_TIMEOUT_SECONDS)
                ftp.quit()
        self._disconnect()

    def _session(self) -> ftplib.FTP:
        if self._ftp is None:
            raise ConnectionError("not connected")  # retried: reconnects
        return self._ftp

    @override
    def _remote_size(self, path: str) -> int | None:
        ftp = self._session()
        ftp.voidcmd("TYPE I")  # SIZE is refused in ASCII mode
        try:
            return ftp.size(path)
        except ftplib.error_perm as exc:
            if _reply_code(exc) in ("550", "530"):
                raise
            return None  # SIZE not supported: download to the end, no size check

    @override
    def _retrieve(
        self, path: str, offset: int, size: int | None, sink: Callable[[bytes], None]
    ) -> None:
        ftp = self._session()
        ftp.voidcmd("TYPE I")
        ftp.retrbinary(f"RETR {path}", sink, blocksize=self.blocksize, rest=offset or None)

    @override
    def _list(self, folder: str) -> list[RemoteFile]:
        ftp = self._session()
        try:
            entries = list(ftp.mlsd(folder, facts=["type", "size", "modify"]))
        except ftplib.error_perm as exc:
            if _reply_code(exc) not in ("500", "501", "502", "504"):
                raise
            return self._list_nlst(folder)  # an old server without MLSD
        files = []
        for name, facts in entries:
            if facts.get("type", "file").lower() != "file":
                continue
            size = facts.get("size")
            files.append(
                RemoteFile(
                    name=name,  # a plain name by RFC 3659; anything else is flagged, not cut
                    size=int(size) if size is not None and size.isdigit() else None,
                    modified=_parse_ftp_time(facts.get("modify", "")),
                )
            )
        return files

    def _list_nlst(self, folder: str) -> list[RemoteFile]:
        """List with NLST, then SIZE and MDTM per name (servers without MLSD)."""
        ftp = self._session()
        names = ftp.nlst(folder)
        ftp.voidcmd("TYPE I")  # NLST switched to ASCII, where SIZE is refused
        files = []
        prefix = folder.rstrip("/") + "/"
        for entry in names:
            name = entry.removeprefix(prefix)  # some servers answer `folder/name`
            if name in ("", ".", ".."):
                continue
            if "/" in name or unsafe_name(name):
                files.append(RemoteFile(name=name, size=None, modified=None))  # flagged later
                continue  # never put such a name in a command
            path = posixpath.join(folder, name)
            try:
                size = ftp.size(path)
            except ftplib.error_perm as exc:
                if _reply_code(exc) == "550":
                    continue  # not a regular file (a folder)
                size = None
            try:
                modified = _parse_ftp_time(ftp.sendcmd(f"MDTM {path}")[4:])
            except ftplib.error_perm:
                modified = None
            files.append(RemoteFile(name=name, size=size, modified=modified))
        return files

    @override
    def _classify(self, exc: Exception) -> FailureKind | None:
        if isinstance(exc, ftplib.error_perm):
            code = _reply_code(exc)
            if code == "530":
                return "auth"
            if code == "550":
                text = str(exc).lower()
                return "denied" if "denied" in text or "permission" in text else "missing"
            return "fatal"
        if isinstance(exc, (ssl.SSLCertVerificationError, socket.gaierror)):
            return "fatal"  # a wrong certificate or host name does not heal by retrying
        if isinstance(exc, (ftplib.Error, EOFError, OSError)):
            return "retry"  # 4xx replies, drops, resets, timeouts, TLS hiccups
        return None
