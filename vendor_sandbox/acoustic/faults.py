"""The Acoustic sandbox's fault switches: what the api, the BEX files and RRDE results can be
asked to get wrong."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from vendor_sandbox.servers.ratelimit import RateLimit

__all__ = ["AcousticFaults", "BexDamage"]


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
    * ``rrde_expire_results``: the next N jobs to complete have their ZIP deleted as soon as it
      is written (expired; GetJobStatus still answers COMPLETE); later jobs keep theirs.
    * ``rrde_only_days``: the four RRDE faults above it (not the count) hit only jobs whose
      window starts on one of these days; None: every job.
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
    * ``rate_limit``: every call (token, REST and XML alike: one budget per org) counts against
      this :class:`~vendor_sandbox.servers.ratelimit.RateLimit`; its headers go on every
      answer, and a call beyond it answers 429 with ``Retry-After``.
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
    rrde_expire_results: int = 0
    rrde_only_days: set[date] | None = None
    late_periods: set[datetime] = field(default_factory=set)
    http_errors: list[int] = field(default_factory=list)
    redirect: tuple[int, str] | None = None
    html_pages: set[str] = field(default_factory=set)
    definition_list_answer: Any = None
    rate_limit: RateLimit | None = None

    def for_rrde(self, start: datetime) -> AcousticFaults:
        """The faults an RRDE job whose window starts at `start` meets (see `rrde_only_days`)."""
        if self.rrde_only_days is None or start.date() in self.rrde_only_days:
            return self
        return AcousticFaults()
