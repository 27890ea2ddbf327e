"""Opening a downloaded result: ZIP, gzip or plain (by its first bytes), bounded as it streams.

Every vendor's result goes through `open_container`, so every vendor inherits the same guarantees:

* the container is recognised by its magic bytes, never by its name (extensions lie);
* a ZIP or gzip file is verified before use: every selected member is read through once
  (streaming, constant memory; CRCs checked), so a file cut short or damaged at the source, or
  one that expands past a limit, is refused before a record of it is emitted. Decompressing
  costs a fraction of parsing, so the second pass is cheap;
* the expansion limits (`Limits.max_member_bytes`, `Limits.max_expansion_ratio`) are enforced on
  the bytes actually produced while reading, for the verification pass and the parse alike. The
  sizes in a ZIP's directory only give a cheap early refusal: they are not trusted to be true;
* a read that fails inside the decompressor (truncated gzip, bad CRC) is `CorruptFileError`;
* a ZIP member must be STORED or DEFLATED and not encrypted, checked before it is read: zipfile's
  bzip2 and LZMA decompressors have no output cap (a 1 KB member with a lying size header expands
  to gigabytes in one call), and no vendor is documented to use anything but DEFLATE;
* a `MemoryError` while reading is an unusable result too (`TooLargeToReadError`): the job is
  forgotten rather than kept to fail the same way on every run.

Crossing a limit is a damaged result (`CorruptFileError` naming the limit and its setting), so the
job is forgotten and the next run asks for a new export.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from typing_extensions import override

from tap_emailtracking.errors import CorruptFileError, TapEmailTrackingError, UnexpectedError
from tap_emailtracking.limits import Limits

RATIO_FLOOR = 1 << 20
"""Expanded bytes below which no ratio is checked: tiny members compress oddly, and cannot hurt."""
_BUFFER = 1 << 16
_CHUNK = 1 << 20
_DAMAGE = (zipfile.BadZipFile, OSError, EOFError, zlib.error)
_UNREADABLE = (NotImplementedError, RuntimeError)  # zipfile: Deflate64 and friends, encryption
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
    9: "Deflate64",
    99: "AES (WinZip)",
}
REQUESTED_AGAIN = "re-run the sync: the export is requested again (state did not move)"


def sniff_container(head: bytes) -> str:
    """ "zip", "gzip" or "plain", from a file's first bytes (extensions lie)."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "plain"


@dataclass(frozen=True)
class Origin:
    """Whose file this is, for error messages; `next_run` says what the next run does with it."""

    vendor: str
    stream: str | None
    subject: str
    next_run: str | None = None

    def damaged(self, path: Path, detail: str) -> CorruptFileError:
        return CorruptFileError(
            f"the downloaded file {path.name} is damaged ({detail})",
            vendor=self.vendor,
            stream=self.stream,
            subject=self.subject,
            action=f"{self.next_run or REQUESTED_AGAIN}; if it keeps failing, ask the vendor to "
            "check their export files",
        )

    def exceeded(self, limits: Limits, setting: str, what: str) -> CorruptFileError:
        return limits.exceeded(
            setting,
            what,
            vendor=self.vendor,
            stream=self.stream,
            subject=self.subject,
            next_run=self.next_run,
        )


class _Bounded(io.RawIOBase):
    """A member's decompressed bytes, counted as they are read against the expansion limits."""

    def __init__(
        self,
        inner: IO[bytes],
        *,
        member: str,
        compressed: int | None,
        limits: Limits,
        origin: Origin,
        path: Path,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._member = member
        self._compressed = compressed
        self._limits = limits
        self._origin = origin
        self._path = path
        self.expanded = 0
        self._cap = limits.max_member_bytes
        if compressed is not None:
            ratio_cap = max(int(limits.max_expansion_ratio * compressed), RATIO_FLOOR)
            self._cap = min(self._cap, ratio_cap)

    @override
    def readable(self) -> bool:
        return True

    @override
    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except _DAMAGE as exc:
            raise self._origin.damaged(self._path, f"{self._member}: {exc}") from exc
        size = len(data)
        buffer[:size] = data
        self.expanded += size
        if self.expanded > self._cap:
            raise _over_limit(self._limits, self._origin, self._member, self.expanded, None)
        return size

    @override
    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def _over_limit(
    limits: Limits, origin: Origin, member: str, expanded: int, compressed: int | None
) -> CorruptFileError:
    """The error for a member that expands (or claims to expand) past a limit."""
    if expanded > limits.max_member_bytes:
        return origin.exceeded(
            limits,
            "max_member_bytes",
            f"{member} expands to more than {limits.max_member_bytes:,} bytes",
        )
    return origin.exceeded(
        limits,
        "max_expansion_ratio",
        f"{member} expands more than {limits.max_expansion_ratio:g} times its compressed size"
        + ("" if compressed is None else f" ({compressed:,} bytes)"),
    )


class Container:
    """One opened result file: its members (one for gzip and plain) and their bounded streams."""

    def __init__(
        self,
        path: Path,
        kind: str,
        raw: IO[bytes],
        archive: zipfile.ZipFile | None,
        members: list[str],
        *,
        limits: Limits,
        origin: Origin,
    ) -> None:
        self.path = path
        self.kind = kind
        self.members = members
        self.size = path.stat().st_size
        self._raw = raw
        self._archive = archive
        self._limits = limits
        self._origin = origin

    def position(self) -> int:
        """Bytes of the file on disk read so far (compressed bytes for ZIP and gzip)."""
        return self._raw.tell()

    def open(self, member: str) -> IO[bytes]:
        """A buffered stream of one member's bytes, bounded by the expansion limits."""
        inner: IO[bytes]
        compressed: int | None
        if self._archive is not None:
            info = self._archive.getinfo(member)
            compressed = min(info.compress_size, self.size)
            _check_method(self.path, info, self._origin)
            try:
                inner = self._archive.open(info)
            except (*_DAMAGE, *_UNREADABLE) as exc:
                raise self._origin.damaged(self.path, f"member {member}: {exc}") from exc
        elif self.kind == "gzip":
            self._raw.seek(0)
            compressed = self.size
            inner = cast(IO[bytes], gzip.GzipFile(fileobj=self._raw, mode="rb"))
        else:
            self._raw.seek(0)
            compressed = None
            inner = cast(IO[bytes], _Unclosed(self._raw))
        bounded = _Bounded(
            inner,
            member=member,
            compressed=compressed,
            limits=self._limits,
            origin=self._origin,
            path=self.path,
        )
        return io.BufferedReader(bounded, _BUFFER)

    def verify(self) -> None:
        """Read every compressed member once: CRCs and the expansion limits, before any parse."""
        if self.kind == "plain":
            return
        for member in self.members:
            with self.open(member) as stream:
                while stream.read(_CHUNK):
                    pass


class _Unclosed(io.RawIOBase):
    """The plain file itself, which the container (not the member stream) closes."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw

    @override
    def readable(self) -> bool:
        return True

    @override
    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)


@contextmanager
def open_container(
    path: Path,
    *,
    limits: Limits,
    vendor: str,
    stream: str | None,
    subject: str,
    suffix: str = "",
    kinds: tuple[str, ...] = ("zip", "gzip", "plain"),
    next_run: str | None = None,
) -> Iterator[Container]:
    """Open a downloaded file whatever its container; a ZIP is verified before it is yielded.

    A ZIP lists only the members whose names end with `suffix` (case-insensitive), in name order;
    one without such a member is damaged. `kinds` are the containers this vendor may send.
    `next_run` overrides the advice of damage errors (what the next run does with this file).
    """
    origin = Origin(vendor, stream, subject, next_run)
    with ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        kind = sniff_container(raw.read(4))
        raw.seek(0)
        if kind not in kinds:
            raise origin.damaged(path, f"not a {' or '.join(k.upper() for k in kinds)} file")
        archive: zipfile.ZipFile | None = None
        if kind == "zip":
            try:
                archive = stack.enter_context(zipfile.ZipFile(raw))
            except _DAMAGE as exc:
                raise origin.damaged(path, str(exc)) from exc
            members = _zip_members(path, archive, suffix, limits, origin)
        else:
            members = [path.name]
        container = Container(path, kind, raw, archive, members, limits=limits, origin=origin)
        container.verify()
        yield container


def _zip_members(
    path: Path, archive: zipfile.ZipFile, suffix: str, limits: Limits, origin: Origin
) -> list[str]:
    """Selected member names in order, refused early when their stated sizes cross a limit."""
    size = path.stat().st_size
    wanted = suffix.lower()
    infos = sorted(
        (i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(wanted)),
        key=lambda i: i.filename,
    )
    if not infos:
        raise origin.damaged(path, f"no {suffix.lower() or 'file'} member inside")
    for info in infos:
        _check_method(path, info, origin)
        compressed = min(info.compress_size, size)
        ratio_cap = max(limits.max_expansion_ratio * compressed, RATIO_FLOOR)
        if info.file_size > limits.max_member_bytes or info.file_size > ratio_cap:
            raise _over_limit(limits, origin, info.filename, info.file_size, compressed)
    return [info.filename for info in infos]


def _check_method(path: Path, info: zipfile.ZipInfo, origin: Origin) -> None:
    """Refuse an encrypted member, or one compressed by anything but STORED or DEFLATED."""
    if info.flag_bits & 0x1:
        raise origin.damaged(path, f"member {info.filename} is encrypted")
    if info.compress_type not in _METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "unknown")
        raise origin.damaged(
            path,
            f"member {info.filename} uses compression method {info.compress_type} ({method}); "
            "only stored and deflate are read",
        )


class TooLargeToReadError(CorruptFileError):
    """Reading the file ran out of memory: unusable as it is, so its job is forgotten."""


@contextmanager
def unexpected_errors(*, vendor: str, stream: str | None, subject: str) -> Iterator[None]:
    """Name the vendor, stream and file on any exception that is not one of the tap's own.

    A `MemoryError` becomes `TooLargeToReadError` (an unusable result: the job is forgotten, so
    the next run asks anew instead of repeating it for ever); anything else (a bug, a full disk)
    becomes `UnexpectedError` (the job is kept). Both are chained, so the traceback stays.
    """
    try:
        yield
    except TapEmailTrackingError:
        raise
    except MemoryError as exc:
        raise TooLargeToReadError(
            "the file needs more memory than this process could get to read it (MemoryError)",
            vendor=vendor,
            stream=stream,
            subject=subject,
            action="the export is requested again on the next run (a standing export's file is "
            "read again); give the tap more memory, or lower the max_*_bytes limits so such a "
            "file is refused before it fills memory",
        ) from exc
    except Exception as exc:
        detail = str(exc)
        raise UnexpectedError(
            f"unexpected {type(exc).__name__} while reading the file"
            + (f": {detail}" if detail else ""),
            vendor=vendor,
            stream=stream,
            subject=subject,
            action="re-run the sync; if it happens again, report this error with its traceback",
        ) from exc
