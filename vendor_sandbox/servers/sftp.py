"""A real SFTP server (asyncssh) over a local folder, run in a background thread's event loop.

Password login, chroot to the folder, a fresh ed25519 host key per start (clients trust it through
`known_hosts_line`), an optional download fault that cuts the connection mid-file, and optional
hostile listing entries (`DownloadFaults.listing_extra`).

Two optional hooks let a vendor app take part: `password_check(username, password)` accepts
further logins (Acoustic: user `oauth` with a live access token), and `on_access(operation, path)`
is called with `"list"` before a folder is listed and `"stat"` before a file's attributes are read
(`path` as the client sees it, absolute), so an app can change files in between (a growing file).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import posixpath
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncssh
from typing_extensions import override

from vendor_sandbox.servers.base import ThreadedServer
from vendor_sandbox.servers.faults import DownloadFaults

_START_TIMEOUT = 10.0

PasswordCheck = Callable[[str, str], bool]
AccessHook = Callable[[str, str], None]


class _ReadState:
    """Per-handle download bookkeeping for the fault."""

    __slots__ = ("limit", "served", "started")

    def __init__(self) -> None:
        self.started = False
        self.served = 0
        self.limit: int | None = None


class _SandboxSftp(asyncssh.SFTPServer):
    """Chrooted SFTP that counts downloads and can cut one after N bytes."""

    def __init__(
        self,
        chan: asyncssh.SSHServerChannel[bytes],
        *,
        root: Path,
        faults: DownloadFaults | None,
        on_access: AccessHook | None = None,
    ) -> None:
        super().__init__(chan, chroot=str(root).encode())
        self._faults = faults
        self._on_access = on_access
        self._reads: dict[int, _ReadState] = {}

    def _notify(self, operation: str, path: bytes) -> None:
        if self._on_access is not None:
            client_path = posixpath.normpath(posixpath.join("/", path.decode("utf-8", "replace")))
            self._on_access(operation, client_path)

    @override
    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        self._notify("list", path)
        async for name in super().scandir(path):
            yield name
        for extra in self._faults.listing_extra if self._faults is not None else ():
            attrs = asyncssh.SFTPAttrs(
                type=asyncssh.FILEXFER_TYPE_REGULAR,
                size=1,
                permissions=stat.S_IFREG | 0o644,
                atime=1704067200,
                mtime=1704067200,
            )
            yield asyncssh.SFTPName(extra.encode(), b"", attrs)

    @override
    def stat(self, path: bytes) -> Any:  # asyncssh: stat_result | SFTPAttrs (maybe awaitable)
        self._notify("stat", path)
        return super().stat(path)

    @override
    def lstat(self, path: bytes) -> Any:
        self._notify("stat", path)
        return super().lstat(path)

    @override
    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        if self._faults is not None and not pflags & asyncssh.FXF_WRITE:
            self._reads[id(file_obj)] = _ReadState()
        return file_obj

    @override
    def close(self, file_obj: object) -> None:
        self._reads.pop(id(file_obj), None)
        super().close(file_obj)

    @override
    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        data: bytes = super().read(file_obj, offset, size)  # type: ignore[assignment]
        state = self._reads.get(id(file_obj))
        if state is None or self._faults is None:
            return data
        if not state.started:
            # The first read of a handle tells a fresh download (offset 0) from a resume.
            state.started = True
            self._faults.record_download(offset=offset)
            state.limit = self._faults.take_drop()
        state.served += len(data)
        if state.limit is not None and state.served > state.limit:
            # Abort: the TCP connection goes away without an SSH disconnect, like a real cut.
            self.connection.abort()
            return b""
        return data


class _SandboxSsh(asyncssh.SSHServer):
    """Password-only SSH login that reports its connection to the owning server."""

    def __init__(self, owner: SftpServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    @override
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connections.add(conn)

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    @override
    def begin_auth(self, username: str) -> bool:
        return True

    @override
    def password_auth_supported(self) -> bool:
        return True

    @override
    def validate_password(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self._owner.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._owner._password.encode())
        if user_ok and password_ok:
            return True
        check = self._owner.password_check
        return check is not None and bool(check(username, password))


class SftpServer(ThreadedServer):
    """SFTP on `host:port` (port 0 picks a free one) serving `root` to one user."""

    kind = "sftp"

    def __init__(
        self,
        root: Path,
        username: str,
        password: str,
        *,
        faults: DownloadFaults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        password_check: PasswordCheck | None = None,
        on_access: AccessHook | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.root = Path(root)
        self.username = username
        self._password = password
        self.faults = faults
        self.password_check = password_check
        self.on_access = on_access
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._host_key: asyncssh.SSHKey | None = None

    @override
    def __repr__(self) -> str:
        return f"SftpServer(sftp://{self.host}:{self.port}, root={str(self.root)!r})"

    # --- lifecycle

    @override
    def _bind(self) -> None:
        quiet = logging.getLogger("asyncssh")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        self._loop = asyncio.new_event_loop()

    @override
    def _serve(self) -> None:
        if self._loop is not None:
            self._loop.run_forever()

    @override
    def _wait_listening(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(_START_TIMEOUT)

    async def _listen(self) -> None:
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        root, faults = self.root, self.faults

        def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
            return _SandboxSftp(chan, root=root, faults=faults, on_access=self.on_access)

        self._acceptor = await asyncssh.listen(
            self.host,
            self._requested_port,
            server_host_keys=[self._host_key],
            server_factory=lambda: _SandboxSsh(self),
            sftp_factory=sftp_factory,
            allow_scp=False,
            reuse_address=True,
        )
        self.port = self._acceptor.get_port()

    async def _close_connections(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        # A client left connected to a stopped loop hangs on its next call: cut it loose.
        for conn in list(self._connections):
            conn.abort()
        self._connections.clear()
        if self._acceptor is not None:
            await self._acceptor.wait_closed()
            self._acceptor = None
        await asyncio.sleep(0)
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @override
    def _shutdown(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            if loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self._close_connections(), loop)
                future.result(_START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    @override
    def _cleanup(self) -> None:
        if self._loop is not None:
            self._loop.close()
        self._loop = None

    # --- host key for clients

    @property
    def known_hosts_line(self) -> str:
        """The OpenSSH known_hosts line for this server (`[host]:port` unless port 22)."""
        if self._host_key is None:
            raise RuntimeError("start the server first: the host key is made at start")
        key_type, key_data = self._host_key.export_public_key("openssh").decode().split()[:2]
        pattern = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{pattern} {key_type} {key_data}"

    def write_known_hosts(self, path: Path | str) -> Path:
        """Write a known_hosts file that trusts this server (and nothing else)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.known_hosts_line + "\n", encoding="utf-8")
        return target

    @property
    def connection_count(self) -> int:
        """Open client connections (for tests that check nothing leaks)."""
        return len(self._connections)
