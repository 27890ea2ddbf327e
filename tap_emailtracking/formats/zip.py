"""ZIP containers, verified before use.

A ZIP cut short in transit, or corrupt at the source, must never be parsed as if it were whole:
`verified_members` reads every member once to check its CRC (streaming, constant memory) and
raises `CorruptFileError` naming the file, so no record of a damaged export is emitted.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tap_emailtracking.errors import CorruptFileError

_CHUNK = 1 << 20


def _damaged(
    path: Path, detail: str, *, vendor: str, stream: str | None, subject: str
) -> Exception:
    return CorruptFileError(
        f"the downloaded archive {path.name} is damaged ({detail})",
        vendor=vendor,
        stream=stream,
        subject=subject,
        action="re-run the sync: the export is requested again (nothing of it was emitted and "
        "state did not move); if it keeps failing, ask the vendor to check their export files",
    )


@contextmanager
def open_verified_zip(
    path: Path, *, vendor: str, stream: str | None, subject: str, suffix: str = ""
) -> Iterator[list[tuple[str, zipfile.ZipFile]]]:
    """Open a ZIP, check every member's CRC, and yield `(member name, archive)` pairs.

    Only members whose names end with `suffix` (case-insensitive) are listed, in name order.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _damaged(path, str(exc), vendor=vendor, stream=stream, subject=subject) from exc
    with archive:
        names = sorted(
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and info.filename.lower().endswith(suffix.lower())
        )
        if not names:
            raise _damaged(
                path,
                f"no {suffix or ''} member inside",
                vendor=vendor,
                stream=stream,
                subject=subject,
            )
        for name in names:
            try:
                with archive.open(name) as member:
                    while member.read(_CHUNK):
                        pass
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise _damaged(
                    path, f"member {name}: {exc}", vendor=vendor, stream=stream, subject=subject
                ) from exc
        yield [(name, archive) for name in names]


def open_member(archive: zipfile.ZipFile, name: str) -> IO[bytes]:
    """Open one member for streaming reads."""
    return archive.open(name)
