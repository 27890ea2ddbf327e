"""Result files over plain HTTP, as vendors that hand out a download link serve them.

`HttpFiles` is a WSGI app: `GET <prefix>/<name>` answers the file under `root` (sub-folders
allowed, nothing outside `root`), with `Content-Length`, `Range: bytes=N-` or `bytes=N-M` (206
with `Content-Range`; 416 past the end) and 404 for a missing file. Links are capabilities: no
authentication, as Pinpointe's result links are read [I]. A `DownloadFaults` cuts a download
after N bytes by closing the connection mid-body, exactly as the SFTP and FTP servers do, and
counts downloads and resumes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from vendor_sandbox.servers.faults import DownloadFaults

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["HttpFiles"]

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 64 * 1024


class HttpFiles:
    """Serve the files under `root` at `prefix` (e.g. `/pinpointe/results`)."""

    def __init__(self, root: Path, prefix: str, *, faults: DownloadFaults | None = None) -> None:
        self.root = Path(root)
        self.prefix = "/" + prefix.strip("/")
        self.faults = faults
        self.requests: list[dict[str, str | None]] = []  # path and Range of every GET

    def url_path(self, name: str) -> str:
        """The path (no host) a file of `root` is served at."""
        return f"{self.prefix}/{name}"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._answer(request, environ)
        return response(environ, start_response)

    def _answer(self, request: Request, environ: WSGIEnvironment) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed")
        path = unquote(request.path)
        if not path.startswith(self.prefix + "/"):
            return _plain(404, "Not Found")
        self.requests.append({"path": path, "range": request.headers.get("Range")})
        file = self._file(path[len(self.prefix) + 1 :])
        if file is None:
            return _plain(404, "Not Found")
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        wanted = request.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if match is None:
                return _plain(416, "Only Range: bytes=N- or bytes=N-M is served")
            start = int(match.group(1))
            if match.group(2):
                end = min(int(match.group(2)), size - 1)
            if start >= size or end < start:
                return Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
        length = end - start + 1
        headers = {"Content-Length": str(length), "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        content_type = "text/csv" if file.suffix == ".csv" else "application/json"
        if request.method == "HEAD":
            return Response(status=status, headers=headers, content_type=content_type)
        drop = None
        if self.faults is not None:
            self.faults.record_download(offset=start)
            drop = self.faults.take_drop()
        body = _body(file, start, length, drop, environ.get("werkzeug.socket"))
        return Response(body, status=status, headers=headers, content_type=content_type)

    def _file(self, name: str) -> Path | None:
        """The file `name` names under `root`, or None (missing, a folder, or outside root)."""
        if not name or "\x00" in name:
            return None
        root = self.root.resolve()
        candidate = (root / name).resolve()
        if root not in candidate.parents or not candidate.is_file():
            return None
        return candidate


def _body(
    file: Path, start: int, length: int, drop: int | None, sock: socket.socket | None
) -> Iterator[bytes]:
    """The bytes asked for in chunks; with `drop`, only that many, then the connection closes."""
    left = length if drop is None else min(length, drop)
    with file.open("rb") as handle:
        handle.seek(start)
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    if drop is not None and drop < length and sock is not None:
        # The chunk above is written and flushed once the server asks for the next one: the
        # client has those bytes, then sees the connection end before Content-Length is met.
        sock.shutdown(socket.SHUT_RDWR)


def _plain(status: int, text: str) -> Response:
    return Response(text, status=status, content_type="text/plain")
