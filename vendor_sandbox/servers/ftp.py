"""A real FTP / explicit-FTPS server (pyftpdlib) over a local folder, run in a thread.

Read-only login for one user, passive mode, a self-signed certificate for 127.0.0.1 when `tls`,
an optional download fault that cuts the data and control connections mid-file, and optional
hostile listing entries (`DownloadFaults.listing_extra`, in MLSD and NLST).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS

# TLS_* need pyOpenSSL: the sandbox extra installs pyftpdlib[ssl].
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer
from typing_extensions import override

from vendor_sandbox.servers.base import ThreadedServer
from vendor_sandbox.servers.faults import DownloadFaults

_log = logging.getLogger("pyftpdlib")
# pyftpdlib adds its own INFO stream handler unless some handler exists; keep test output clean.
if not any(isinstance(h, logging.NullHandler) for h in _log.handlers):
    _log.addHandler(logging.NullHandler())
_log.propagate = False

_POLL_SECONDS = 0.05


def make_self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write `cert.pem` and `key.pem` for `host`; the cert is its own CA, so clients trust it.

    It carries the extensions strict verifiers (Python 3.13's VERIFY_X509_STRICT) insist on.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vendor-sandbox")])
    try:
        alt: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        alt = [x509.DNSName(host)]
    alt.append(x509.DNSName("localhost"))
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _abort_socket(channel: Any) -> None:
    """Make the next close send a TCP reset instead of an orderly goodbye."""
    sock = getattr(channel, "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The TLS mixin skips its polite shutdown once it believes the channel errored.
    channel._error = True


class _CuttingDTP:
    """Data-channel mixin: stop a RETR after the armed byte count and drop the whole session."""

    _drop_after: int | None = None
    _armed = False

    def send(self, data: bytes) -> int:
        me = cast(Any, self)
        if not self._armed and me.file_obj is not None:
            self._armed = True
            self._drop_after = me.cmd_channel.take_pending_drop()
        if self._drop_after is not None:
            room = self._drop_after - me.tot_bytes_sent
            if room <= 0:
                self._cut()
                return 0
            data = data[:room]
        return cast(int, cast(Any, super()).send(data))

    def _cut(self) -> None:
        me = cast(Any, self)
        control = me.cmd_channel
        me._resp = None  # no "426" reply: the control connection is going away too
        _abort_socket(me)
        _abort_socket(control)
        control.close()
        me.close()


class _CountingControl:
    """Control-channel mixin: count RETRs (REST > 0 means resumed) and pick the ones to cut."""

    faults: DownloadFaults | None = None
    _pending_drop: int | None = None

    def ftp_RETR(self, file: str) -> Any:  # noqa: N802 - pyftpdlib's command naming
        me = cast(Any, self)
        if self.faults is not None and me.fs.isfile(file):
            self.faults.record_download(offset=me._restart_position)
            self._pending_drop = self.faults.take_drop()
        return cast(Any, super()).ftp_RETR(file)

    def take_pending_drop(self) -> int | None:
        drop, self._pending_drop = self._pending_drop, None
        return drop


class _HostileListingFS(AbstractedFS):  # type: ignore[misc]  # pyftpdlib is untyped
    """Adds the fault switch's `listing_extra` names to NLST and MLSD, as regular files."""

    def _extra(self) -> list[str]:
        faults: DownloadFaults | None = getattr(self.cmd_channel, "faults", None)
        return list(faults.listing_extra) if faults is not None else []

    def listdir(self, path: str) -> list[str]:
        return [*super().listdir(path), *self._extra()]

    def format_mlsx(
        self, basedir: str, listing: list[str], perms: str, facts: Any, ignore_err: bool = True
    ) -> Any:
        extra = self._extra()
        real = [name for name in listing if name not in extra]
        yield from super().format_mlsx(basedir, real, perms, facts, ignore_err)
        for name in extra:
            yield f"modify=20240101000000;size=1;type=file; {name}\r\n".encode(
                self.cmd_channel.encoding, self.cmd_channel.unicode_errors
            )


class FtpServer(ThreadedServer):
    """FTP (or explicit FTPS with `tls=True`) on `host:port` serving `root` read-only."""

    kind = "ftp"

    def __init__(
        self,
        root: Path,
        username: str,
        password: str,
        *,
        tls: bool = False,
        cert_dir: Path | None = None,
        faults: DownloadFaults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.root = Path(root)
        self.username = username
        self._password = password
        self.tls = tls
        self.faults = faults
        self._cert_dir = Path(cert_dir) if cert_dir is not None else None
        self._own_cert_dir: Path | None = None
        self.ca_file: Path | None = None
        self._server: Any = None
        self._stopping = threading.Event()

    @override
    def __repr__(self) -> str:
        scheme = "ftps" if self.tls else "ftp"
        return f"FtpServer({scheme}://{self.host}:{self.port}, root={str(self.root)!r})"

    def _handler_class(self) -> type[Any]:
        # pyftpdlib configures servers through handler *class* attributes: one subclass each.
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.username, self._password, str(self.root), perm="elr")
        attrs: dict[str, Any] = {
            "authorizer": authorizer,
            "abstracted_fs": _HostileListingFS,
            "faults": self.faults,
            "banner": "vendor sandbox FTP ready.",
            "auth_failed_timeout": 0,  # real servers pause; tests should not
            "timeout": 60,
        }
        if self.faults is not None:
            attrs["use_sendfile"] = False  # sendfile() bypasses send(), where bytes are counted
        if not self.tls:
            attrs["dtp_handler"] = type("SandboxDTP", (_CuttingDTP, DTPHandler), {})
            return type("SandboxFTPHandler", (_CountingControl, FTPHandler), attrs)

        cert_dir = self._cert_dir
        if cert_dir is None:
            self._own_cert_dir = Path(tempfile.mkdtemp(prefix="sandbox-ftps-"))
            cert_dir = self._own_cert_dir
        cert_file, key_file = make_self_signed_cert(cert_dir, self.host)
        self.ca_file = cert_file
        attrs.update(
            dtp_handler=type("SandboxTLSDTP", (_CuttingDTP, TLS_DTPHandler), {}),
            certfile=str(cert_file),
            keyfile=str(key_file),
            ssl_context=None,
            tls_control_required=True,
            tls_data_required=True,
        )
        return type("SandboxFTPSHandler", (_CountingControl, TLS_FTPHandler), attrs)

    @override
    def _bind(self) -> None:
        handler = self._handler_class()
        self._server = FTPServer((self.host, self._requested_port), handler, ioloop=IOLoop())
        self.port = int(self._server.address[1])
        self._stopping.clear()

    @override
    def _serve(self) -> None:
        server = self._server
        try:
            while not self._stopping.is_set():
                server.serve_forever(timeout=_POLL_SECONDS, blocking=False, handle_exit=False)
        finally:
            server.close_all()  # clients get EOF instead of hanging

    @override
    def _shutdown(self) -> None:
        self._stopping.set()

    @override
    def _cleanup(self) -> None:
        self._server = None
        if self._own_cert_dir is not None:
            shutil.rmtree(self._own_cert_dir, ignore_errors=True)
            self._own_cert_dir = None
