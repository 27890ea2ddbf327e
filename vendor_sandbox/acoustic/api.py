"""Acoustic Campaign's APIs as one WSGI app: OAuth, BEX job definitions (REST), the XML API.

Speaks what ``docs/acoustic.md`` describes (the tap's reading of the vendor), including its [I]
choices:

* ``POST /oauth/token`` (form ``grant_type=refresh_token&client_id&client_secret&refresh_token``)
  -> ``{"access_token", "token_type": "bearer", "refresh_token", "expires_in"}``.  Access tokens
  are opaque random strings living ``token_lifetime`` seconds (``clock``).  A wrong or revoked
  refresh token answers 400, a wrong client 401, both ``{"error": "invalid_grant", ...}``.
* ``/rest/bulkeventexport/jobdefinition[/<id>]``: GET (array / one), POST (-> ``{"jobId": N}``,
  ids from 5001), PUT (the body repeats the id; -> the stored definition), DELETE
  (-> ``{"jobId": N}``).  Bad bodies: 400 (missing field, not JSON), 404 (unknown database or
  definition), 409 (the database already has a definition), 422 (invalid value), each
  ``{"errors": [{"message": ...}, ...]}``.  Definitions live in this object.
* ``POST /XMLAPI`` (form ``xml=<Envelope>`` or a raw XML body): ``RawRecipientDataExport`` and
  ``GetJobStatus``.  Poll 1 of a job answers WAITING, polls 2..N-1 RUNNING, poll N
  (``polls_until_complete``) COMPLETE, when the ZIP is written to ``<download>/<FILE_PATH>``.
  Faults are in-band (HTTP 200, ``SUCCESS`` false, ``<Fault>``).
* Every REST and XML call needs ``Authorization: Bearer <token>``; an unknown, expired or revoked
  token answers 401 (REST: ``{"error": "invalid_token"}``).

BEX files: the org admin's SFTP folder is ``files_root / download_folder``.  ``rotate_bex_files``
writes, with the stored definition's settings, one file per completed period since the data start
(periods are half-open ``[t, t + jobFrequency h)`` aligned on UTC midnight), named
``<exportFileName>Email_<yyyyMMddHHmmss>_<jobFrequency>.<csv|psv|tsv>`` after the rotation time
(the period's end), modification time = rotation time.  With ``write_partial`` the unfinished
period is written as ``<its future name>.tmp``.  Creating or updating a definition rotates up to
``auto_rotate_until`` when it is set.

SFTP: :meth:`sftp_password_check` accepts ``oauth`` + a live access token, and the ftp user's
email + ``ftp_password``; :meth:`sftp_access` is the SFTP server's access hook that makes the
``growing_file`` fault grow (see :class:`AcousticFaults`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import shutil
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from vendor_sandbox.acoustic.data import (
    DEFAULT_EXPORT_FILE_NAME,
    EVENT_TYPES,
    FILE_FORMATS,
    MAILING_TYPES,
    AcousticDataset,
    WrittenFile,
    bex_file_name,
)
from vendor_sandbox.servers.http import echo_page, redirect_answer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "FIRST_DEFINITION_ID",
    "FIRST_JOB_ID",
    "FREQUENCIES",
    "RRDE_ELEMENTS",
    "AcousticApi",
    "AcousticFaults",
    "BexChannel",
    "BexDamage",
    "BexFile",
]

UTC = timezone.utc
FIRST_DEFINITION_ID = 5001
FIRST_JOB_ID = 72649
FREQUENCIES = (1, 2, 3, 4, 6, 8, 12, 24)
MAX_COLUMNS = 5
MAX_BODY_BYTES = 1_000_000
DEFINITIONS_PATH = "/rest/bulkeventexport/jobdefinition"
#: RawRecipientDataExport event elements -> the ``Event Type`` words they select.
RRDE_ELEMENTS = {
    "SENT": "Sent",
    "OPENS": "Open",
    "CLICKS": "Click Through",
    "HARD_BOUNCES": "Hard Bounce",
    "SOFT_BOUNCES": "Soft Bounce",
    "MAIL_BLOCKS": "Mail Block",
    "OPTOUTS": "Opt Out",
    "SUPPRESSED": "Suppressed",
}
_RRDE_FORMATS = {"0": ",", "1": "|", "2": "\t"}  # [I] 0 CSV (the doc's), 1 pipe, 2 tab
_RRDE_STAMP_BASE = datetime(2024, 1, 8, 10, 0, 0)
_XML_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2}):(\d{2}))?$")
_JOB_DESCRIPTION = "Export raw recipient data."


@dataclass(frozen=True)
class BexDamage:
    """How ``AcousticFaults.damaged_files`` damages a BEX file (lines are 1-based, physical).

    * ``gzip_bomb``: the file becomes gzip (its name unchanged: the tap trusts magic bytes, not
      names) holding its rows, then ``size`` bytes of blank lines: ~1000:1.
    * ``long_line``: a line of ``size`` bytes (``x``, one unquoted field) goes before ``line``.
    * ``long_row``: a row of about ``size`` bytes goes before ``line``: short quoted fields
      that each hold a line break, so no line and no field is long.
    * ``latin1``: byte 0xE9 (``é`` in latin-1, never valid alone in UTF-8) goes after the first
      byte of ``line``.
    * ``nul``: a NUL byte goes after the first byte of each of ``count`` lines from ``line``.
    """

    kind: str
    line: int = 2
    size: int = 0
    count: int = 1

    def apply(self, path: Path) -> None:
        """Damage the file at ``path`` in place."""
        data = path.read_bytes()
        if self.kind == "gzip_bomb":
            with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out:
                out.write(data)
                blank = b"\r\n" * (1 << 19)
                for _ in range(0, self.size, len(blank)):
                    out.write(blank)
            return
        lines = data.splitlines(keepends=True)
        at = self.line - 1
        if self.kind == "long_line":
            lines.insert(at, b"x" * self.size + b"\r\n")
        elif self.kind == "long_row":
            lines.insert(at, b'"a\r\n",' * (self.size // 7) + b"x\r\n")
        elif self.kind == "latin1":
            lines[at] = lines[at][:1] + b"\xe9" + lines[at][1:]
        elif self.kind == "nul":
            for i in range(at, at + self.count):
                lines[i] = lines[i][:1] + b"\x00" + lines[i][1:]
        else:
            raise ValueError(f"unknown damage {self.kind!r}")
        path.write_bytes(b"".join(lines))


@dataclass
class AcousticFaults:
    """Misbehaviour on request; flip fields on ``api.faults`` at any time.

    * ``revoked_refresh_token``: the token endpoint answers 400 ``invalid_grant``.
    * ``expire_tokens_after_calls``: an access token dies after N successful REST/XML calls; the
      next call with it answers 401 (a fresh token gets N calls again).  A dead token is also
      refused as an SFTP ``oauth`` password unless ``dead_tokens_fail_sftp`` is False.
    * ``growing_file``: that BEX file (by name) is being written: from the next SFTP access (or
      :meth:`AcousticApi.apply_faults`) it holds the header and its first row only, and every
      SFTP listing of the download folder, and every ``stat`` of the file, appends one more row
      (size and mtime change), until it is complete.  Clearing the fault completes it at once.
    * ``malformed_row_in``: that BEX file gets one extra row with 4 fields (the header has 25+)
      before its middle data row; the physical line is in ``api.malformed_lines[name]``.
      Clearing the fault rewrites the file clean.  The bad row is not an event (truth unchanged).
    * ``empty_file``: that BEX file is on the site with 0 bytes (created, not yet written) from
      the next SFTP access; clearing the fault writes its rows (mtime: now).  Left out of
      :meth:`AcousticApi.bex_truth` while empty.
    * ``damaged_files``: BEX file name -> :class:`BexDamage`: that file's clean bytes are damaged
      so (and written clean again once the entry is removed).
    * ``rrde_zip_bomb_bytes``: each RRDE ZIP written gets this many bytes of blank lines (CRLF)
      after its rows: a ZIP bomb (~1000:1) whose rows are still the truth.
    * ``rrde_error``: GetJobStatus of an unfinished job answers ERROR with a description.
    * ``rrde_announce_path``: RawRecipientDataExport answers this FILE_PATH (the ZIP is still
      written under the job's own name).
    * ``rrde_delete_result``: a job's ZIP is deleted as soon as it is written (expired).
    * ``late_periods``: rotation withholds the files of periods starting at these UTC datetimes;
      :meth:`AcousticApi.add_late_file` delivers one later (older name, newer mtime).
    * ``http_errors``: the next responses (any endpoint) use these statuses, FIFO: 500 an HTML
      page, 503 plain, 429 with ``Retry-After: 0``.
    * ``redirect``: every call answers this (status, Location) redirect, ``{path}`` being the
      request's path; a request already at the Location is served.
    * ``html_pages``: calls of these kinds (``token``, ``rest``, ``xml``) answer HTTP 200 with a
      blocking proxy's HTML page that echoes the Authorization header and the body.
    * ``definition_list_answer``: when not None, GET of the definition list answers this JSON
      (HTTP 200) instead of the stored definitions (an answer of an unexpected shape).
    """

    revoked_refresh_token: bool = False
    expire_tokens_after_calls: int | None = None
    dead_tokens_fail_sftp: bool = True
    growing_file: str | None = None
    malformed_row_in: str | None = None
    empty_file: str | None = None
    damaged_files: dict[str, BexDamage] = field(default_factory=dict)
    rrde_zip_bomb_bytes: int | None = None
    rrde_error: bool = False
    rrde_announce_path: str | None = None
    rrde_delete_result: bool = False
    late_periods: set[datetime] = field(default_factory=set)
    http_errors: list[int] = field(default_factory=list)
    redirect: tuple[int, str] | None = None
    html_pages: set[str] = field(default_factory=set)
    definition_list_answer: Any = None


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


@dataclass
class _Token:
    issued: float
    calls: int = 0
    dead: bool = False


@dataclass
class _Job:
    job_id: str
    file_path: str
    start: datetime  # naive local
    end: datetime  # naive local, inclusive
    words: tuple[str, ...]  # RRDE event words; empty = all
    columns: tuple[str, ...]
    delimiter: str
    polls: int = 0
    status: str = "WAITING"


class _RestError(Exception):
    def __init__(self, status: int, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.status = status
        self.messages = messages


class _XmlFaultError(Exception):
    def __init__(self, message: str, error_id: int = 145) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id


class AcousticApi:
    """WSGI app of Acoustic's OAuth, BEX REST and XML APIs backed by an :class:`AcousticDataset`.

    Counters: ``token_requests`` (every call of the token endpoint), ``definition_posts``,
    ``definition_puts``, ``definition_deletes``, ``rrde_submissions``, ``status_polls``,
    ``sftp_oauth_logins``; ``requests`` lists every call as ``{"kind": "token"|"rest"|"xml",
    "method", "path", "operation", "status"}`` (no secrets); ``malformed_lines`` maps file name ->
    line of the injected bad row; ``rrde_files`` lists the result ZIPs written.
    """

    def __init__(
        self,
        dataset: AcousticDataset,
        files_root: Path,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        ftp_user_id: str,
        ftp_password: str | None = None,
        prefix: str = "",
        download_folder: str = "/download",
        token_lifetime: float = 14400,
        polls_until_complete: int = 3,
        org_timezone: str | None = None,
        auto_rotate_until: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dataset = dataset
        self.files_root = Path(files_root)
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.ftp_user_id = ftp_user_id
        self.ftp_password = ftp_password
        self.prefix = prefix.rstrip("/")
        self.download_folder = "/" + download_folder.strip("/")
        self.token_lifetime = token_lifetime
        self.polls_until_complete = max(1, polls_until_complete)
        self.org_timezone = org_timezone or dataset.spec.timezone
        self.auto_rotate_until = auto_rotate_until
        self.clock = clock
        self.faults = AcousticFaults()
        self.requests: list[dict[str, Any]] = []
        self.token_requests = 0
        self.definition_posts = 0
        self.definition_puts = 0
        self.definition_deletes = 0
        self.rrde_submissions = 0
        self.status_polls = 0
        self.sftp_oauth_logins = 0
        self.malformed_lines: dict[str, int] = {}
        self.rrde_files: list[Path] = []
        # Benchmarks: a job asking for what an earlier job asked for gets a hard link to that
        # job's ZIP (whose CSV member keeps the first job's name), so the generator is not timed.
        self.reuse_rrde_exports = False
        self._rrde_built: dict[tuple[Any, ...], Path] = {}
        self._tokens: dict[str, _Token] = {}
        self._definitions: dict[int, dict[str, Any]] = {}
        self._next_definition_id = FIRST_DEFINITION_ID
        self._files: dict[str, BexFile] = {}
        self._held: dict[datetime, tuple[datetime, BexChannel]] = {}
        self._rotated_until: datetime | None = None
        self._tmp_name: str | None = None
        self._jobs: dict[str, _Job] = {}
        self._next_job_id = FIRST_JOB_ID
        self._lock = threading.RLock()
        self.download_dir.mkdir(parents=True, exist_ok=True)
        self.staging_dir = self.files_root.parent / f"{self.files_root.name}-acoustic-staging"

    # ------------------------------------------------------------------------------ helpers
    @property
    def download_dir(self) -> Path:
        """The org admin's SFTP folder on disk."""
        return self.files_root / self.download_folder.strip("/")

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """Stored definitions (copies), by id."""
        with self._lock:
            return [json.loads(json.dumps(d)) for _, d in sorted(self._definitions.items())]

    def definition_for(self, contact_source_id: str | None = None) -> dict[str, Any] | None:
        """The definition of a database (default: the dataset's), or None."""
        wanted = contact_source_id or self.dataset.spec.contact_source_id
        with self._lock:
            for definition in self._definitions.values():
                if str(definition["contactSourceId"]) == wanted:
                    return definition
        return None

    def create_definition(self, body: dict[str, Any]) -> int:
        """Store a definition as POST would (same validation, counters untouched); its id.

        Raises ``ValueError`` with the vendor's messages when POST would refuse it.
        """
        try:
            return self._post_definition(body)
        except _RestError as exc:
            raise ValueError(f"HTTP {exc.status}: {'; '.join(exc.messages)}") from None

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token handed out so far (tests search output for them)."""
        return list(self._tokens)

    def issue_token(self) -> str:
        """A fresh access token (as the token endpoint would hand out)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Token(issued=self.clock())
        return token

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as if it expired)."""
        with self._lock:
            for token in self._tokens.values():
                token.dead = True

    def token_is_live(self, token: str) -> bool:
        """Whether ``token`` would be accepted now (does not count as a call)."""
        with self._lock:
            return self._token_ok(token, count=False)

    def _token_ok(self, token: str, *, count: bool) -> bool:
        record = self._tokens.get(token)
        if record is None or record.dead:
            return False
        if self.clock() - record.issued >= self.token_lifetime:
            record.dead = True
            return False
        limit = self.faults.expire_tokens_after_calls
        if limit is not None and record.calls >= limit:
            record.dead = True
            return False
        if count:
            record.calls += 1
        return True

    # ------------------------------------------------------------------------------ SFTP hooks
    def sftp_password_check(self, username: str, password: str) -> bool:
        """SFTP login: ``oauth`` + a live access token, or the ftp user's email + password."""
        with self._lock:
            if username == "oauth":
                ok = self._token_ok(password, count=False)
                if not ok and not self.faults.dead_tokens_fail_sftp:
                    record = self._tokens.get(password)
                    ok = record is not None and self.clock() - record.issued < self.token_lifetime
                if ok:
                    self.sftp_oauth_logins += 1
                return ok
        return (
            self.ftp_password is not None
            and username.lower() == self.ftp_user_id.lower()
            and secrets.compare_digest(password.encode(), self.ftp_password.encode())
        )

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

    # ------------------------------------------------------------------------------ BEX files
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

    # ------------------------------------------------------------------------------ BEX internals
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

    # ----------------------------------------------------------------------------------- WSGI
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix) :]
        response, kind, operation = self._dispatch(request, path)
        with self._lock:
            self.requests.append(
                {
                    "kind": kind,
                    "method": request.method,
                    "path": path,
                    "operation": operation,
                    "status": response.status_code,
                }
            )
        return response(environ, start_response)

    def _dispatch(self, request: Request, path: str) -> tuple[Response, str, str]:
        lowered = path.rstrip("/").lower()
        if lowered == "/oauth/token":
            kind = "token"
        elif lowered == DEFINITIONS_PATH or lowered.startswith(DEFINITIONS_PATH + "/"):
            kind = "rest"
        elif lowered == "/xmlapi":
            kind = "xml"
        else:
            return Response("Not Found", status=404, content_type="text/plain"), "other", ""
        if self.faults.redirect is not None:
            moved = redirect_answer(request, *self.faults.redirect)
            if moved is not None:
                return moved, kind, "redirect"
        if kind in self.faults.html_pages:
            return echo_page(request), kind, "html_page"
        with self._lock:
            http_error = self.faults.http_errors.pop(0) if self.faults.http_errors else None
        if http_error is not None:
            return _http_error(http_error), kind, "http_error"
        if kind == "token":
            return self._token(request), kind, "token"
        if kind == "rest":
            return self._rest(request, path)
        return self._xml(request)

    # ------------------------------------------------------------------------------ OAuth
    def _token(self, request: Request) -> Response:
        with self._lock:
            self.token_requests += 1
        if request.method != "POST":
            return _json({"error": "invalid_request", "error_description": "POST only"}, 405)
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be refresh_token",
                },
                400,
            )
        if not (
            secrets.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
            and secrets.compare_digest(
                form.get("client_secret", "").encode(), self.client_secret.encode()
            )
        ):
            return _json(
                {"error": "invalid_grant", "error_description": "Invalid client credentials"},
                401,
            )
        given = form.get("refresh_token", "")
        if self.faults.revoked_refresh_token or not secrets.compare_digest(
            given.encode(), self.refresh_token.encode()
        ):
            return _json(
                {
                    "error": "invalid_grant",
                    "error_description": "The refresh token is invalid or has been revoked",
                },
                400,
            )
        token = self.issue_token()
        return _json(
            {
                "access_token": token,
                "token_type": "bearer",
                "refresh_token": self.refresh_token,
                "expires_in": int(self.token_lifetime),
            },
            200,
        )

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._lock:
            return self._token_ok(token.strip(), count=True)

    # ------------------------------------------------------------------------------ REST
    def _rest(self, request: Request, path: str) -> tuple[Response, str, str]:
        rest = path.rstrip("/")[len(DEFINITIONS_PATH) :].strip("/")
        method = request.method
        operation = f"{method} jobdefinition" + ("/<id>" if rest else "")
        if not self._authorized(request):
            response = _json(
                {"error": "invalid_token", "error_description": "Access token expired or invalid"},
                401,
            )
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response, "rest", operation
        try:
            with self._lock:
                return self._rest_call(request, method, rest), "rest", operation
        except _RestError as exc:
            body = {"errors": [{"message": m} for m in exc.messages]}
            return _json(body, exc.status), "rest", operation

    def _rest_call(self, request: Request, method: str, rest: str) -> Response:
        if rest and not rest.isdigit():
            raise _RestError(404, [f"Job definition {rest} not found"])
        definition_id = int(rest) if rest else None
        if method == "GET":
            if definition_id is None:
                odd = self.faults.definition_list_answer
                return _json(self.definitions if odd is None else odd, 200)
            return _json(self._stored(definition_id), 200)
        if method == "POST":
            if definition_id is not None:
                raise _RestError(405, ["POST creates a definition: leave the id out of the URL"])
            new_id = self._post_definition(_body(request))
            self.definition_posts += 1
            return _json({"jobId": new_id}, 200)
        if method == "PUT":
            if definition_id is None:
                raise _RestError(405, ["PUT needs the definition id in the URL"])
            stored = self._put_definition(definition_id, _body(request))
            self.definition_puts += 1
            return _json(stored, 200)
        if method == "DELETE":
            if definition_id is None:
                raise _RestError(405, ["DELETE needs the definition id in the URL"])
            self._stored(definition_id)
            del self._definitions[definition_id]
            self.definition_deletes += 1
            return _json({"jobId": definition_id}, 200)
        raise _RestError(405, [f"Method {method} is not allowed"])

    def _stored(self, definition_id: int) -> dict[str, Any]:
        stored = self._definitions.get(definition_id)
        if stored is None:
            raise _RestError(404, [f"Job definition {definition_id} not found"])
        return stored

    def _post_definition(self, body: Any) -> int:
        with self._lock:
            if isinstance(body, dict) and body.get("id") is not None:
                raise _RestError(400, ["id must not be set when creating a job definition"])
            definition = self._validate(body)
            source = str(definition["contactSourceId"])
            if self.definition_for(source) is not None:
                raise _RestError(
                    409, [f"A job definition already exists for contactSourceId {source}"]
                )
            new_id = self._next_definition_id
            self._next_definition_id += 1
            self._definitions[new_id] = {"id": new_id, **definition}
            if self.auto_rotate_until is not None:
                self.rotate_bex_files(self.auto_rotate_until)
            return new_id

    def _put_definition(self, definition_id: int, body: Any) -> dict[str, Any]:
        current = self._stored(definition_id)
        if not isinstance(body, dict) or body.get("id") is None:
            raise _RestError(400, ["id is required in the body of a PUT"])
        if str(body["id"]) != str(definition_id):
            raise _RestError(
                400, [f"id {body['id']} in the body differs from {definition_id} in the URL"]
            )
        definition = self._validate({k: v for k, v in body.items() if k != "id"})
        if str(definition["contactSourceId"]) != str(current["contactSourceId"]):
            raise _RestError(
                404,
                [
                    f"No job definition exists for contactSourceId "
                    f"{definition['contactSourceId']} with id {definition_id}"
                ],
            )
        self._definitions[definition_id] = {"id": definition_id, **definition}
        if self.auto_rotate_until is not None:
            self.rotate_bex_files(self.auto_rotate_until)
        return self._definitions[definition_id]

    def _validate(self, body: Any) -> dict[str, Any]:
        """The definition to store (defaults filled), or ``_RestError`` with every problem."""
        if not isinstance(body, dict):
            raise _RestError(400, ["The body must be a JSON object"])
        missing: list[str] = []
        invalid: list[str] = []
        source = body.get("contactSourceId")
        if source is None or str(source).strip() == "":
            missing.append("contactSourceId is required")
        ftp_user = body.get("ftpUserId")
        if not isinstance(ftp_user, str) or not ftp_user.strip():
            missing.append("ftpUserId is required")
        elif ftp_user.strip().lower() != self.ftp_user_id.lower():
            invalid.append(f"ftpUserId {ftp_user} is not the organization admin's login")
        channels = body.get("channels")
        out_channels: list[dict[str, Any]] = []
        if not isinstance(channels, list) or not channels:
            missing.append("channels is required (one Email channel)")
        else:
            if len(channels) > 1:
                invalid.append("Only one channel (Email) is supported")
            for channel in channels:
                out_channels.append(_validate_channel(channel, missing, invalid))
        if missing:
            raise _RestError(400, missing + invalid)
        if invalid:
            raise _RestError(422, invalid)
        if str(source) != self.dataset.spec.contact_source_id:
            raise _RestError(404, [f"Database {source} not found"])
        return {"contactSourceId": source, "ftpUserId": ftp_user, "channels": out_channels}

    # ------------------------------------------------------------------------------ XML API
    def _xml(self, request: Request) -> tuple[Response, str, str]:
        if request.method != "POST":
            return Response("Method Not Allowed", status=405), "xml", ""
        if not self._authorized(request):
            return (
                Response("401 Unauthorized: access token expired or invalid", status=401),
                "xml",
                "",
            )
        operation = ""
        try:
            envelope = _parse_envelope(request)
            body = envelope.find("Body")
            call = body[0] if body is not None and len(body) else None
            if call is None:
                raise _XmlFaultError("Invalid request: the Envelope has no Body operation", 51)
            operation = call.tag
            with self._lock:
                if operation == "RawRecipientDataExport":
                    return _xml_ok(self._rrde_submit(call)), "xml", operation
                if operation == "GetJobStatus":
                    return _xml_ok(self._job_status(call)), "xml", operation
            raise _XmlFaultError(f"Unknown API operation: {operation}", 51)
        except _XmlFaultError as exc:
            return _xml_fault(exc), "xml", operation

    def _rrde_submit(self, call: ET.Element) -> str:
        start = _xml_datetime(_text(call, "EVENT_DATE_START"), "EVENT_DATE_START", end=False)
        end = _xml_datetime(_text(call, "EVENT_DATE_END"), "EVENT_DATE_END", end=True)
        if end < start:
            raise _XmlFaultError("EVENT_DATE_END is before EVENT_DATE_START", 312)
        if call.find("MOVE_TO_FTP") is None:
            raise _XmlFaultError("The sandbox only runs exports with MOVE_TO_FTP", 314)
        export_format = _text(call, "EXPORT_FORMAT") or "0"
        delimiter = _RRDE_FORMATS.get(export_format)
        if delimiter is None:
            raise _XmlFaultError(f"Invalid EXPORT_FORMAT {export_format}", 314)
        words: tuple[str, ...] = ()
        if call.find("ALL_EVENT_TYPES") is None:
            words = tuple(w for el, w in RRDE_ELEMENTS.items() if call.find(el) is not None)
        columns = tuple(
            "".join(name.itertext()).strip() for name in call.findall("COLUMNS/COLUMN/NAME")
        )
        job_id = str(self._next_job_id)
        n = self._next_job_id - FIRST_JOB_ID
        self._next_job_id += 1
        stamp = _RRDE_STAMP_BASE + timedelta(minutes=n)
        file_path = f"Raw Recipient Data Export {stamp:%b %d %Y %I-%M-%S %p} {job_id}.zip"
        self._jobs[job_id] = _Job(job_id, file_path, start, end, words, columns, delimiter)
        self.rrde_submissions += 1
        return (
            "<SUCCESS>TRUE</SUCCESS><MAILING>"
            f"<JOB_ID>{job_id}</JOB_ID>"
            f"<FILE_PATH>{escape(self.faults.rrde_announce_path or file_path)}</FILE_PATH>"
            "</MAILING>"
        )

    def _job_status(self, call: ET.Element) -> str:
        job_id = _text(call, "JOB_ID")
        job = self._jobs.get(job_id)
        if job is None:
            raise _XmlFaultError(f"Job {job_id or '(empty)'} not found", 145)
        self.status_polls += 1
        job.polls += 1
        description = _JOB_DESCRIPTION
        if job.status not in ("COMPLETE", "ERROR"):
            if self.faults.rrde_error:
                job.status = "ERROR"
            elif job.polls >= self.polls_until_complete:
                self._write_rrde(job)
                job.status = "COMPLETE"
                if self.faults.rrde_delete_result:
                    (self.download_dir / job.file_path).unlink()
            else:
                job.status = "WAITING" if job.polls == 1 else "RUNNING"
        if job.status == "ERROR":
            description += " Error: the export could not be generated (sandbox fault rrde_error)."
        return (
            f"<SUCCESS>TRUE</SUCCESS><JOB_ID>{job_id}</JOB_ID><JOB_STATUS>{job.status}"
            f"</JOB_STATUS><JOB_DESCRIPTION>{escape(description)}</JOB_DESCRIPTION>"
            "<PARAMETERS><PARAMETER><NAME>FILE_PATH</NAME>"
            f"<VALUE>{escape(job.file_path)}</VALUE></PARAMETER></PARAMETERS>"
        )

    def _write_rrde(self, job: _Job) -> None:
        final = self.download_dir / job.file_path
        partial = self.download_dir / f".{job.file_path}.part"
        request = (job.start, job.end, job.words, job.columns, job.delimiter)
        bomb = self.faults.rrde_zip_bomb_bytes
        reuse = self.reuse_rrde_exports and not bomb
        built = self._rrde_built.get(request) if reuse else None
        if built is not None:
            os.link(built, partial)
            partial.replace(final)
            self.rrde_files.append(final)
            return
        self.dataset.write_rrde_zip(
            partial,
            job.start,
            job.end,
            tz=self.org_timezone,
            event_types=job.words or None,
            custom_columns=job.columns,
            member_name=job.file_path[: -len(".zip")] + ".csv",
            delimiter=job.delimiter,
        )
        if bomb:
            _append_blank_lines(partial, bomb)
        if reuse:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            built = self.staging_dir / f"rrde-built-{len(self._rrde_built)}.zip"
            os.link(partial, built)
            self._rrde_built[request] = built
        partial.replace(final)
        self.rrde_files.append(final)

    def rrde_job(self, job_id: str) -> dict[str, Any] | None:
        """What a submitted job asked for: ``{"file_path", "start", "end", "event_words",
        "columns", "status", "polls"}`` (local naive datetimes, end inclusive) or None."""
        with self._lock:
            job = self._jobs.get(str(job_id))
            if job is None:
                return None
            return {
                "file_path": job.file_path,
                "start": job.start,
                "end": job.end,
                "event_words": job.words,
                "columns": job.columns,
                "status": job.status,
                "polls": job.polls,
            }


# ---------------------------------------------------------------------------------- helpers
def _append_blank_lines(path: Path, size: int) -> None:
    """Rewrite a one-member ZIP with ``size`` bytes of blank lines after its content."""
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
        data = archive.read(info)
    blank = b"\r\n" * (1 << 19)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(info.filename, "w", force_zip64=True) as out,
    ):
        out.write(data)
        for _ in range(0, size, len(blank)):
            out.write(blank)


def _validate_channel(channel: Any, missing: list[str], invalid: list[str]) -> dict[str, Any]:
    if not isinstance(channel, dict):
        invalid.append("Each channel must be a JSON object")
        return {}
    out = dict(channel)
    kind = channel.get("type")
    if kind is None:
        missing.append("channels[].type is required")
    elif str(kind).lower() != "email":
        invalid.append(f"Channel type {kind} is not supported (only Email)")
    frequency = channel.get("jobFrequency")
    if frequency is None:
        missing.append("jobFrequency is required")
    elif not str(frequency).strip().isdigit() or int(str(frequency)) not in FREQUENCIES:
        invalid.append(f"jobFrequency {frequency} is invalid: valid values are 1,2,3,4,6,8,12,24")
    else:
        out["jobFrequency"] = int(str(frequency))
    name = channel.get("exportFileName")
    if name is None or name == "":
        out["exportFileName"] = DEFAULT_EXPORT_FILE_NAME
    elif not isinstance(name, str) or any(c in name for c in "/\\\x00"):
        invalid.append(f"exportFileName {name!r} is invalid")
    fmt = channel.get("exportFileFormat")
    if fmt is None or fmt == "":
        out["exportFileFormat"] = "CSV"
    elif str(fmt).upper() not in FILE_FORMATS:
        invalid.append(f"exportFileFormat {fmt} is invalid: CSV, PSV or TSV")
    else:
        out["exportFileFormat"] = str(fmt).upper()
    for key, item_key, allowed in (
        ("eventTypes", "eventType", EVENT_TYPES),
        ("mailingTypes", "mailingType", MAILING_TYPES),
    ):
        items = channel.get(key)
        if items is None:
            out[key] = []
            continue
        if not isinstance(items, list):
            invalid.append(f"{key} must be a list")
            continue
        for item in items:
            value = item.get(item_key) if isinstance(item, dict) else None
            if value not in allowed:
                invalid.append(
                    f"{item_key} {value} is not supported: valid values are {', '.join(allowed)}"
                )
    columns = channel.get("columnNames")
    if columns is None:
        out["columnNames"] = []
    elif not isinstance(columns, list):
        invalid.append("columnNames must be a list")
    else:
        if len(columns) > MAX_COLUMNS:
            invalid.append(f"At most {MAX_COLUMNS} columnNames can be requested")
        orders: list[int] = []
        names: list[str] = []
        for column in columns:
            if not isinstance(column, dict) or not str(column.get("columnName") or "").strip():
                missing.append("columnNames[].columnName is required")
                continue
            names.append(str(column["columnName"]))
            order = column.get("columnOrder")
            if order is None:
                missing.append(f"columnOrder is required for column {column['columnName']}")
            elif not str(order).strip().isdigit() or not 0 <= int(str(order)) < MAX_COLUMNS:
                invalid.append(f"columnOrder {order} is invalid: 0 to {MAX_COLUMNS - 1}")
            else:
                orders.append(int(str(order)))
        if len(set(orders)) != len(orders):
            invalid.append("columnOrder values must be distinct")
        if len(set(names)) != len(names):
            invalid.append("columnName values must be distinct")
        if len(orders) == len(columns) and len(set(orders)) == len(orders):
            out["columnNames"] = sorted(
                ({**c, "columnOrder": int(str(c["columnOrder"]))} for c in columns),
                key=lambda c: c["columnOrder"],
            )
    return out


def _body(request: Request) -> Any:
    data = request.get_data(cache=False)
    if len(data) > MAX_BODY_BYTES:
        raise _RestError(400, ["The body is too large"])
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _RestError(400, ["The body is not valid JSON"]) from None


def _parse_envelope(request: Request) -> ET.Element:
    document = request.form.get("xml")
    if document is None:
        raw = request.get_data(cache=True)
        if len(raw) > MAX_BODY_BYTES:
            raise _XmlFaultError("Invalid request: the document is too large", 51)
        document = raw.decode("utf-8", errors="replace")
    if len(document) > MAX_BODY_BYTES:
        raise _XmlFaultError("Invalid request: the document is too large", 51)
    if "<!DOCTYPE" in document or "<!ENTITY" in document:
        raise _XmlFaultError("Invalid request: DTDs and entities are not allowed", 51)
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise _XmlFaultError(f"Invalid XML: {exc}", 51) from None
    if root.tag != "Envelope":
        raise _XmlFaultError("Invalid request: the root element must be Envelope", 51)
    return root


def _text(parent: ET.Element, path: str) -> str:
    element = parent.find(path)
    return "" if element is None else "".join(element.itertext()).strip()


def _xml_datetime(raw: str, what: str, *, end: bool) -> datetime:
    match = _XML_DATE.match(raw)
    if match is None:
        raise _XmlFaultError(f"{what} {raw!r} is invalid: MM/DD/YYYY HH:MM:SS expected", 312)
    month, day, year = (int(g) for g in match.groups()[:3])
    try:
        if match.group(4) is None:
            moment = datetime.combine(date(year, month, day), datetime.min.time())
            return moment + timedelta(days=1, seconds=-1) if end else moment
        hour, minute, second = (int(g) for g in match.groups()[3:])
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise _XmlFaultError(f"{what} {raw!r} is not a valid date", 312) from None


def _xml_ok(result_body: str) -> Response:
    return Response(
        f"<Envelope><Body><RESULT>{result_body}</RESULT></Body></Envelope>",
        status=200,
        content_type="text/xml; charset=utf-8",
    )


def _xml_fault(fault: _XmlFaultError) -> Response:
    return Response(
        "<Envelope><Body><RESULT><SUCCESS>false</SUCCESS></RESULT><Fault><Request/>"
        f"<FaultCode/><FaultString>{escape(fault.message)}</FaultString><detail><error>"
        f"<errorid>{fault.error_id}</errorid><module/><class>SP.API</class><method/>"
        "</error></detail></Fault></Body></Envelope>",
        status=200,
        content_type="text/xml; charset=utf-8",
    )


def _json(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _http_error(status: int) -> Response:
    if status == 429:
        return Response(
            "Too Many Requests", status=429, content_type="text/plain", headers={"Retry-After": "0"}
        )
    if status == 500:
        page = "<html><head><title>500</title></head><body><h1>Internal Server Error</h1></body>"
        return Response(page + "</html>", status=500, content_type="text/html")
    if status == 503:
        return Response("Service Unavailable", status=503, content_type="text/plain")
    return Response(f"HTTP {status}", status=status, content_type="text/plain")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
