"""Spool files: how one downloaded export feeds several streams while being parsed only once.

The SDK syncs streams one after another, but a vendor file (ExactTarget's XML) interleaves every
record type. The first stream to need a unit parses the file, yields its own records and writes
every other selected type to its own spool (msgspec JSON lines on disk, so memory stays flat);
later streams read their spool and delete it.

A spooled record is read back as its JSON bytes (`msgspec.Raw`), not decoded: the writer copies
them into the RECORD message as they are (the bytes the writer's own encoder would make, since it
is the encoder that wrote them), so a record is encoded once and decoded never.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
from singer_sdk.contrib.msgspec import encoder

_ENCODER = encoder  # the writer's, so a spooled record's bytes are its RECORD's bytes
_DECODER = msgspec.json.Decoder(list[msgspec.Raw])


class SpoolWriter:
    """Write records of several kinds to one file per kind."""

    def __init__(self, directory: Path, prefix: str, kinds: set[str]) -> None:
        self.paths = {kind: directory / f"{prefix}.{kind}.jsonl" for kind in kinds}
        self._files: dict[str, IO[bytes]] = {
            kind: path.open("wb", buffering=1 << 20) for kind, path in self.paths.items()
        }
        self.counts = dict.fromkeys(kinds, 0)

    def write(self, kind: str, records: list[dict[str, Any]]) -> None:
        """Append records of `kind`, as one JSON array line (one encode call per batch)."""
        self._files[kind].write(_ENCODER.encode(records) + b"\n")
        self.counts[kind] += len(records)

    def close(self) -> None:
        """Flush and close every spool."""
        for handle in self._files.values():
            handle.close()

    def discard(self) -> None:
        """Close and delete every spool (the parse failed)."""
        self.close()
        for path in self.paths.values():
            path.unlink(missing_ok=True)


def read_spool(path: Path) -> Iterator[msgspec.Raw]:
    """Yield the records of one spool in the order they were written, each as its JSON bytes."""
    with path.open("rb", buffering=1 << 20) as handle:
        for line in handle:
            yield from _DECODER.decode(line)


class FanOut:
    """Which streams still wait for each unit's records, and the spools holding them.

    One parse of a unit feeds the stream that asked for it directly and spools the records of
    every other stream that will need the unit. The unit's export job may be forgotten only once
    each of those streams has committed the unit (or finished its run without it).
    """

    def __init__(self) -> None:
        self._spools: dict[str, dict[str, Path]] = {}
        self._waiting: dict[str, set[str]] = {}

    def take(self, unit: str, kind: str) -> Path | None:
        """The spool of `kind` for a unit, handed over once (the reader deletes it)."""
        return self._spools.get(unit, {}).pop(kind, None)

    def spooled(self, unit: str, spool: SpoolWriter) -> None:
        """A unit was parsed: its spools wait for their streams."""
        self._spools[unit] = dict(spool.paths)
        self._waiting[unit] = set(spool.paths)

    def committed(self, unit: str, kind: str) -> bool:
        """A stream emitted a unit; True when no stream waits for it any more."""
        waiting = self._waiting.get(unit)
        if waiting is not None:
            waiting.discard(kind)
        if waiting:
            return False
        self._waiting.pop(unit, None)
        return True

    def finish(self, kind: str) -> list[str]:
        """A stream is done for the run: delete its unread spools; return the units now free."""
        free = []
        for unit in list(self._waiting):
            self._waiting[unit].discard(kind)
            path = self._spools.get(unit, {}).pop(kind, None)
            if path is not None:
                path.unlink(missing_ok=True)
            if not self._waiting[unit]:
                del self._waiting[unit]
                free.append(unit)
        return free
