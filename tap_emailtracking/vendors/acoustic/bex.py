"""Bulk Event Export: the job definition, which rotated files are ready, and which are done.

BEX is a standing export, not a job: once its definition exists, Acoustic drops a file in the
admin's SFTP folder every `jobFrequency` hours. So the unit of work is a file, and the bookmark is a
file marker: the newest finished file's timestamp (from its name) plus the names of every finished
file within `marker_history_days` before it. A file is done only after its last row was emitted;
a file that arrives late with an older timestamp is still noticed while it is inside that history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tap_emailtracking.errors import ConfigurationError
from tap_emailtracking.transports.files import RemoteFile
from tap_emailtracking.transports.http import ApiCall, wrong_shape
from tap_emailtracking.vendors.acoustic.client import (
    VENDOR,
    WRONG_ANSWER_ACTION,
    AcousticClient,
)
from tap_emailtracking.vendors.acoustic.settings import AcousticSettings

LOGGER = logging.getLogger("tap_emailtracking.acoustic")
_STAMP = re.compile(r"(?<!\d)(\d{8})[_-]?(\d{6})(?!\d)")
_STAMP_FORMAT = "%Y%m%d%H%M%S"
_EXTENSIONS = {"CSV": ".csv", "PSV": ".psv", "TSV": ".tsv"}
_UNFINISHED = (".tmp", ".part", ".partial", ".filepart")


# -- the job definition -------------------------------------------------------------------------


def desired_channel(settings: AcousticSettings) -> dict[str, Any]:
    """The Email channel these settings ask for, in the vendor's JSON shape."""
    return {
        "type": "Email",
        "jobFrequency": settings.job_frequency_hours,
        "exportFileName": settings.export_file_name,
        "exportFileFormat": settings.file_format,
        "eventTypes": [{"eventType": t} for t in settings.event_types],
        "mailingTypes": [{"mailingType": m} for m in settings.mailing_types],
        "columnNames": [
            {"columnName": name, "columnOrder": order}
            for order, name in enumerate(settings.custom_columns)
        ],
    }


def _channel_view(channel: dict[str, Any]) -> dict[str, Any]:
    """What matters in a channel, comparable whatever order or spelling the vendor used."""
    columns = sorted(channel.get("columnNames") or [], key=lambda c: int(c.get("columnOrder", 0)))
    return {
        "jobFrequency": int(channel.get("jobFrequency") or 0),
        "exportFileName": channel.get("exportFileName") or "",
        "exportFileFormat": str(channel.get("exportFileFormat") or "CSV").upper(),
        "eventTypes": sorted(e.get("eventType", "") for e in channel.get("eventTypes") or []),
        "mailingTypes": sorted(m.get("mailingType", "") for m in channel.get("mailingTypes") or []),
        "columnNames": [c.get("columnName") for c in columns],
    }


_CHANNEL_LISTS = ("eventTypes", "mailingTypes", "columnNames")


def _misshapen(definition: dict[str, Any]) -> str | None:
    """What is wrong with a listed definition's shape, or None when it can be read."""
    if definition.get("id") is None and definition.get("jobDefinitionId") is None:
        return "a job definition without an id"
    channels = definition.get("channels")
    if channels is None:
        return None
    if not isinstance(channels, list) or not all(isinstance(c, dict) for c in channels):
        return "a job definition whose channels are not a list of objects"
    for channel in channels:
        for key in _CHANNEL_LISTS:
            items = channel.get(key)
            if items is not None and (
                not isinstance(items, list) or not all(isinstance(i, dict) for i in items)
            ):
                return f"a job definition whose {key} is not a list of objects"
    return None


def _email_channel(definition: dict[str, Any]) -> dict[str, Any]:
    channels = definition.get("channels") or []
    for channel in channels:
        if str(channel.get("type", "")).lower() == "email":
            return dict(channel)
    return dict(channels[0]) if channels else {}


@dataclass(frozen=True)
class Definition:
    """The definition in force: its id and the channel the files follow."""

    definition_id: str
    channel: dict[str, Any]

    @property
    def file_prefix(self) -> str:
        return str(self.channel.get("exportFileName") or "") + str(
            self.channel.get("type") or "Email"
        )

    @property
    def file_format(self) -> str:
        return str(self.channel.get("exportFileFormat") or "CSV").upper()

    @property
    def custom_columns(self) -> tuple[str, ...]:
        columns = sorted(
            self.channel.get("columnNames") or [], key=lambda c: int(c.get("columnOrder", 0))
        )
        return tuple(str(c.get("columnName")) for c in columns)


def ensure_definition(
    client: AcousticClient, settings: AcousticSettings, *, stream: str | None
) -> Definition:
    """Find the database's definition; create or update it when allowed, else only read it."""
    desired = desired_channel(settings)
    existing = [
        d
        for d in client.list_definitions(stream=stream)
        if str(d.get("contactSourceId")) == settings.contact_source_id
    ]
    body = {
        "channels": [desired],
        "contactSourceId": settings.contact_source_id,
        "ftpUserId": settings.ftp_user_id,
    }
    if not existing:
        if not settings.manage_job_definition:
            raise ConfigurationError(
                f"no BEX job definition exists for database {settings.contact_source_id}",
                vendor=VENDOR,
                stream=stream,
                action="create it in Acoustic, or set acoustic.manage_job_definition to true "
                "(with ftp_user_id) to let the tap create it",
            )
        new_id = client.create_definition(body, stream=stream)
        LOGGER.info("Acoustic: created BEX job definition %s", new_id)
        return Definition(new_id, desired)
    current = existing[0]
    problem = _misshapen(current)
    if problem is not None:
        call = ApiCall(VENDOR, "BEX job definition list", stream, WRONG_ANSWER_ACTION)
        raise wrong_shape(call, problem, current)
    current_id = str(current.get("id") or current.get("jobDefinitionId") or "")
    channel = _email_channel(current)
    if _channel_view(channel) != _channel_view(desired):
        if settings.manage_job_definition:
            client.update_definition(current_id, body, stream=stream)
            LOGGER.info("Acoustic: updated BEX job definition %s to the settings", current_id)
            return Definition(current_id, desired)
        LOGGER.warning(
            "Acoustic: BEX job definition %s differs from the settings; reading the files it "
            "produces (set manage_job_definition to true to update it)",
            current_id,
        )
    return Definition(current_id, channel)


# -- the files --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class BexFile:
    """A finished export file, ordered by the time in its name, then its name."""

    stamp: str
    name: str
    size: int | None = field(compare=False)


def stamp_of(name: str) -> str | None:
    """The `yyyyMMddHHmmss` rotation time in a file name, if it has a valid one."""
    match = _STAMP.search(name)
    if match is None:
        return None
    stamp = match.group(1) + match.group(2)
    try:
        datetime.strptime(stamp, _STAMP_FORMAT)
    except ValueError:
        return None
    return stamp


def candidates(listing: list[RemoteFile], definition: Definition) -> dict[str, BexFile]:
    """Files of this definition: its name prefix, a known extension, a stamp, not unfinished."""
    prefix = definition.file_prefix.lower()
    found: dict[str, BexFile] = {}
    for remote in listing:
        lowered = remote.name.lower()
        if not lowered.startswith(prefix) or lowered.endswith(_UNFINISHED):
            continue
        if not lowered.endswith((*_EXTENSIONS.values(), ".zip", ".gz")):
            continue
        stamp = stamp_of(remote.name[len(prefix) :])
        if stamp is None:
            LOGGER.warning(
                "Acoustic: %s has no yyyyMMddHHmmss time in its name; skipped", remote.name
            )
            continue
        found[remote.name] = BexFile(stamp, remote.name, remote.size)
    return found


def settled(first: list[RemoteFile], second: list[RemoteFile]) -> set[str]:
    """Names whose size and time did not change between two listings (not being written).

    A 0-byte file is never settled: a finished BEX file has at least its header, so an empty one
    is still to be written (and marking it done would lose the rows written into it later). A
    header-only file is settled like any other: a period without events.
    """
    before = {f.name: (f.size, f.modified) for f in first}
    return {f.name for f in second if f.size != 0 and before.get(f.name) == (f.size, f.modified)}


def empty_files(files: list[BexFile], size_of: Callable[[str], int | None]) -> set[str]:
    """Names of files that hold no bytes; a file the listing gave no size for is asked about.

    A server that cannot tell a size even then gets the file read (it may well have rows).
    """
    return {f.name for f in files if (f.size if f.size is not None else size_of(f.name)) == 0}


@dataclass
class FileMarker:
    """Which files are done: a watermark stamp plus the names done within the history.

    `empty` remembers files seen empty (name: stamp): such a file is never done by age, only
    once read, because its rows may be written after the history has moved past its stamp.
    """

    history_days: int
    watermark: str | None = None
    done: dict[str, str] = field(default_factory=dict)
    empty: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state(cls, raw: Any, history_days: int) -> FileMarker:
        if not isinstance(raw, dict):
            return cls(history_days)
        return cls(
            history_days,
            raw.get("watermark"),
            {str(k): str(v) for k, v in (raw.get("done") or {}).items()},
            {str(k): str(v) for k, v in (raw.get("empty") or {}).items()},
        )

    def to_state(self) -> dict[str, Any]:
        state = {"watermark": self.watermark, "done": dict(sorted(self.done.items()))}
        return {**state, "empty": dict(sorted(self.empty.items()))} if self.empty else state

    def _cutoff(self) -> str | None:
        if self.watermark is None:
            return None
        newest = datetime.strptime(self.watermark, _STAMP_FORMAT)
        return (newest - timedelta(days=self.history_days)).strftime(_STAMP_FORMAT)

    def is_done(self, file: BexFile) -> bool:
        """Finished before, or older than the history (assumed finished) and never seen empty."""
        if file.name in self.done:
            return True
        cutoff = self._cutoff()
        return cutoff is not None and file.stamp < cutoff and file.name not in self.empty

    def note_empty(self, files: Iterable[BexFile], listed: Iterable[str]) -> None:
        """Remember `files` as seen empty; forget names no longer listed (expired from the site)."""
        names = set(listed)
        self.empty = {n: s for n, s in self.empty.items() if n in names}
        self.empty.update({f.name: f.stamp for f in files})

    def mark_done(self, file: BexFile) -> None:
        """Record a fully emitted file and forget names that fell out of the history."""
        self.empty.pop(file.name, None)
        self.done[file.name] = file.stamp
        if self.watermark is None or file.stamp > self.watermark:
            self.watermark = file.stamp
        cutoff = self._cutoff()
        if cutoff is not None:
            self.done = {n: s for n, s in self.done.items() if s >= cutoff}
