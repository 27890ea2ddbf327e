"""Acoustic's BEX files in the org admin's SFTP folder, and the SFTP hooks that change them.

The folder is ``files_root / download_folder``.  ``rotate_bex_files`` writes, with the stored
definition's settings, one file per completed period since the data start (periods are half-open
``[t, t + jobFrequency h)`` aligned on UTC midnight), named
``<exportFileName>Email_<yyyyMMddHHmmss>_<jobFrequency>.<csv|psv|tsv>`` after the rotation time
(the period's end), modification time = rotation time.  With ``write_partial`` the unfinished
period is written as ``<its future name>.tmp``.  :meth:`BexFilesPart.sftp_access` is the SFTP
server's access hook that makes the ``growing_file`` fault grow (see ``AcousticFaults``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from typing_extensions import override

from vendor_sandbox.acoustic.base import UTC, AcousticState
from vendor_sandbox.acoustic.data import DEFAULT_EXPORT_FILE_NAME, WrittenFile, bex_file_name
from vendor_sandbox.acoustic.faults import BexDamage


@dataclass(frozen=True)
class BexChannel:
    """The Email channel settings a BEX file was written with."""

    job_frequency: int = 24
    export_file_name: str = DEFAULT_EXPORT_FILE_NAME
    file_format: str = "CSV"
    event_types: tuple[str, ...] = ()  # empty = all
    mailing_types: tuple[str, ...] = ()  # empty = all
    custom_columns: tuple[str, ...] = ()

    @classmethod
    def from_definition(cls, definition: dict[str, Any]) -> BexChannel:
        channel = definition["channels"][0]
        columns = sorted(channel.get("columnNames") or [], key=lambda c: int(c["columnOrder"]))
        return cls(
            job_frequency=int(channel["jobFrequency"]),
            export_file_name=str(channel.get("exportFileName") or DEFAULT_EXPORT_FILE_NAME),
            file_format=str(channel.get("exportFileFormat") or "CSV").upper(),
            event_types=tuple(e["eventType"] for e in channel.get("eventTypes") or []),
            mailing_types=tuple(m["mailingType"] for m in channel.get("mailingTypes") or []),
            custom_columns=tuple(str(c["columnName"]) for c in columns),
        )

    def file_name(self, rotated_at: datetime) -> str:
        return bex_file_name(
            self.export_file_name, rotated_at, self.job_frequency, self.file_format
        )


@dataclass
class _Growth:
    staging: Path
    offsets: list[int]  # header start, each row start, then the size
    revealed: int  # records (header included) visible so far


@dataclass
class BexFile:
    """A BEX file in the download folder and how it was made."""

    name: str
    start: datetime  # period start (UTC), inclusive
    end: datetime  # rotation time (UTC), exclusive end of the period
    channel: BexChannel
    rows: int = 0
    late: bool = False
    malformed_line: int | None = None
    growth: _Growth | None = None
    empty: bool = False  # the empty-file fault: 0 bytes on the site
    damage: BexDamage | None = None

    @property
    def stamp(self) -> str:
        return self.end.strftime("%Y%m%d%H%M%S")

    @property
    def growing(self) -> bool:
        """Still incomplete (the growing-file fault)."""
        return self.growth is not None and self.growth.revealed < len(self.growth.offsets) - 1


class BexFilesPart(AcousticState):
    """The BEX files on the site, how each was made, and the faults applied to them."""

    def _init_bex_files(self) -> None:
        self.malformed_lines: dict[str, int] = {}
        self._files: dict[str, BexFile] = {}
        self._held: dict[datetime, tuple[datetime, BexChannel]] = {}
        self._rotated_until: datetime | None = None
        self._tmp_name: str | None = None

    def sftp_access(self, operation: str, path: str) -> None:
        """SFTP server hook, called before it lists a folder (``list``) or stats a file."""
        with self._lock:
            self.apply_faults()
            folder = self.download_folder
            target = PurePosixPath("/") / path
            growing = [f for f in self._files.values() if f.growing]
            if operation == "list" and str(target) == folder:
                for file in growing:
                    self._grow(file)
            elif operation == "stat" and str(target.parent) == folder:
                for file in growing:
                    if file.name == target.name:
                        self._grow(file)

    def bex_files(self) -> list[BexFile]:
        """Files in the download folder, ordered by the time in their name, then name."""
        with self._lock:
            return sorted(self._files.values(), key=lambda f: (f.stamp, f.name))

    def bex_truth(
        self, names: Iterable[str] | None = None, *, include_growing: bool = False
    ) -> dict[str, list[dict[str, str]]]:
        """Per file (name order as :meth:`bex_files`), the rows it holds when complete.

        Files still growing are left out unless ``include_growing``; the injected bad row of
        ``malformed_row_in`` is never a row here.
        """
        wanted = set(names) if names is not None else None
        out: dict[str, list[dict[str, str]]] = {}
        for file in self.bex_files():
            if wanted is not None and file.name not in wanted:
                continue
            if (file.growing or file.empty) and not include_growing:
                continue
            ch = file.channel
            out[file.name] = self.dataset.bex_truth(
                file.start,
                file.end,
                event_types=ch.event_types,
                mailing_types=ch.mailing_types,
                custom_columns=ch.custom_columns,
            )
        return out

    def file_name_for(self, period_start: datetime) -> str:
        """The name the current definition gives the period starting at ``period_start``."""
        channel = self._channel()
        if channel is None:
            raise ValueError("no BEX job definition exists")
        start = _as_utc(period_start)
        return channel.file_name(start + timedelta(hours=channel.job_frequency))

    @override
    def rotate_bex_files(self, until: datetime, *, write_partial: bool = True) -> list[str]:
        """Write the file of every period that completed by ``until``; the names written.

        Periods start where the last rotation ended (first: the data start) and follow the
        definition in force; nothing is written after the data end, or without a definition.
        With ``write_partial`` the period in progress is written as ``<name>.tmp`` (replaced
        at the next rotation).
        """
        until = _as_utc(until)
        written: list[str] = []
        with self._lock:
            channel = self._channel()
            if channel is None:
                return written
            if self._tmp_name is not None:
                (self.download_dir / self._tmp_name).unlink(missing_ok=True)
                self._tmp_name = None
            ds = self.dataset
            cursor = self._rotated_until or ds.t0
            step = timedelta(hours=channel.job_frequency)
            while cursor < ds.data_end:
                boundary = ds.t0 + step * ((cursor - ds.t0) // step + 1)
                if boundary > until:
                    break
                if cursor in self.faults.late_periods:
                    self._held[cursor] = (boundary, channel)
                else:
                    written.append(self._write_period(cursor, boundary, channel).name)
                cursor = boundary
            self._rotated_until = cursor
            if write_partial and cursor < min(until, ds.data_end):
                boundary = ds.t0 + step * ((cursor - ds.t0) // step + 1)
                tmp = channel.file_name(boundary) + ".tmp"
                ds.write_bex_file(
                    self.download_dir / tmp,
                    cursor,
                    min(until, ds.data_end),
                    fmt=channel.file_format,
                    event_types=channel.event_types,
                    mailing_types=channel.mailing_types,
                    custom_columns=channel.custom_columns,
                )
                self._tmp_name = tmp
            self.apply_faults()
        return written

    def add_late_file(self, period_start: datetime) -> str:
        """Deliver the file of a withheld (``late_periods``) or skipped period now; its name.

        Its name carries its own (older) rotation time; its mtime is later than every file's.
        """
        start = _as_utc(period_start)
        with self._lock:
            held = self._held.pop(start, None)
            if held is not None:
                end, channel = held
            else:
                if any(f.start == start for f in self._files.values()):
                    raise ValueError(f"the file of the period starting {start} was delivered")
                found = self._channel()
                if found is None:
                    raise ValueError("no BEX job definition exists")
                channel = found
                end = start + timedelta(hours=channel.job_frequency)
            self.faults.late_periods.discard(start)
            newest = max((f.end for f in self._files.values()), default=end)
            file = self._write_period(
                start, end, channel, mtime=max(newest, end) + timedelta(minutes=10)
            )
            file.late = True
            self.apply_faults()
            return file.name

    def apply_faults(self) -> None:
        """Bring files in line with ``growing_file`` and ``malformed_row_in`` (SFTP calls it)."""
        with self._lock:
            faults = self.faults
            for file in list(self._files.values()):
                if self._apply_empty(file):
                    continue
                want_bad = faults.malformed_row_in == file.name
                want_growing = faults.growing_file == file.name
                is_bad = file.malformed_line is not None
                if file.growth is not None and (not want_growing or want_bad != is_bad):
                    self._finish_growth(file)
                if want_growing and file.growth is None:
                    self._start_growth(file, malformed=want_bad)
                elif not want_growing and (
                    want_bad != is_bad or faults.damaged_files.get(file.name) != file.damage
                ):
                    self._rewrite(file, malformed=want_bad)

    def _apply_empty(self, file: BexFile) -> bool:
        """Empty a file, or write the rows of one that was empty; True while it is empty."""
        want_empty = self.faults.empty_file == file.name
        if want_empty and not file.empty:
            path = self.download_dir / file.name
            os.truncate(path, 0)
            os.utime(path, (file.end.timestamp(), file.end.timestamp()))
            file.empty = True
        elif file.empty and not want_empty:
            file.empty = False
            bad = self.faults.malformed_row_in == file.name
            self._rewrite(file, malformed=bad, mtime=datetime.now(UTC))
        return file.empty

    def _channel(self) -> BexChannel | None:
        definition = self.definition_for()
        return None if definition is None else BexChannel.from_definition(definition)

    def _write_period(
        self, start: datetime, end: datetime, channel: BexChannel, *, mtime: datetime | None = None
    ) -> BexFile:
        file = BexFile(channel.file_name(end), start, end, channel)
        self._files[file.name] = file
        self._rewrite(file, malformed=False, mtime=mtime or end)
        return file

    def _write(self, file: BexFile, path: Path, *, malformed: bool, track: bool) -> WrittenFile:
        ch = file.channel
        return self.dataset.write_bex_file(
            path,
            file.start,
            file.end,
            fmt=ch.file_format,
            event_types=ch.event_types,
            mailing_types=ch.mailing_types,
            custom_columns=ch.custom_columns,
            malformed=malformed,
            track_rows=track,
        )

    def _rewrite(self, file: BexFile, *, malformed: bool, mtime: datetime | None = None) -> None:
        path = self.download_dir / file.name
        partial = self.download_dir / f".{file.name}.part"
        result = self._write(file, partial, malformed=malformed, track=False)
        file.damage = self.faults.damaged_files.get(file.name)
        if file.damage is not None:
            file.damage.apply(partial)
        stamp = (mtime or file.end).timestamp()
        os.utime(partial, (stamp, stamp))
        partial.replace(path)
        file.rows = result.rows
        self._set_malformed(file, result.malformed_line)

    def _set_malformed(self, file: BexFile, line: int | None) -> None:
        file.malformed_line = line
        if line is None:
            self.malformed_lines.pop(file.name, None)
        else:
            self.malformed_lines[file.name] = line

    def _start_growth(self, file: BexFile, *, malformed: bool) -> None:
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        staging = self.staging_dir / file.name
        result = self._write(file, staging, malformed=malformed, track=True)
        file.rows = result.rows
        self._set_malformed(file, result.malformed_line)
        revealed = min(2, len(result.row_offsets) - 1)
        file.growth = _Growth(staging, result.row_offsets, revealed)
        with staging.open("rb") as src, (self.download_dir / file.name).open("wb") as dst:
            dst.write(src.read(result.row_offsets[revealed]))

    def _grow(self, file: BexFile) -> None:
        growth = file.growth
        if growth is None or growth.revealed >= len(growth.offsets) - 1:
            return
        lo, hi = growth.offsets[growth.revealed], growth.offsets[growth.revealed + 1]
        growth.revealed += 1
        with growth.staging.open("rb") as src, (self.download_dir / file.name).open("ab") as dst:
            src.seek(lo)
            dst.write(src.read(hi - lo))

    def _finish_growth(self, file: BexFile) -> None:
        growth = file.growth
        if growth is None:
            return
        file.growth = None
        path = self.download_dir / file.name
        with growth.staging.open("rb") as src, path.open("r+b") as dst:
            dst.seek(growth.offsets[growth.revealed])
            src.seek(growth.offsets[growth.revealed])
            shutil.copyfileobj(src, dst)
            dst.truncate()
        growth.staging.unlink(missing_ok=True)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
