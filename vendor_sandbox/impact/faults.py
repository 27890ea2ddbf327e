"""The impact.com sandbox's switches (answer shapes the docs leave open) and faults on request.

Units of work are named `click:<ProgramId or *>:<yyyy-mm-dd>` (a partner export of several
programs joins them with commas) and `report:<ReportId>:<first>:<last>:<SUBAID or *>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ENDPOINTS", "ImpactFaults", "ImpactShapes"]

#: Endpoint names used by the request log, the counters and `scoped_endpoints`.
ENDPOINTS = ("Campaigns", "ClickExport", "ReportExport", "Job", "Jobs", "Download", "Replay")


@dataclass
class ImpactShapes:
    """Variants `docs/impact.md` says the tap accepts; flip fields on ``api.shapes``.

    * ``result_format_default``: the format when ``ResultFormat`` is left out (``CSV``).
    * ``result_page_size``: JSON results are split into pages of this many rows (``Page=n``);
      None: one page holds every row.
    * ``redirect``: a completed ``Download`` without ``Mode=Stream`` answers ``302`` to a signed
      URL (True, impact's default) or ``200`` with the file (False).
    * ``rate_headers``: ``"partner"`` (``X-RateLimit-*-hour`` + ``RateLimit-Reset`` seconds),
      ``"brand"`` (``X-RateLimit-*``, reset an epoch), or None: by the account type.
    * ``typed_job_fields``: ``RecordsProcessed``/``PercentageComplete`` as integers and
      ``Replayable`` as a boolean (the seed page's types) instead of strings (the examples').
    * ``list_page_size``: the default ``PageSize`` of ``Campaigns`` and ``Jobs``.
    * ``signed_url_seconds``: how long a signed result URL is valid.
    """

    result_format_default: str = "CSV"
    result_page_size: int | None = None
    redirect: bool = True
    rate_headers: str | None = None
    typed_job_fields: bool = False
    list_page_size: int = 1000
    signed_url_seconds: int = 300


@dataclass
class ImpactFaults:
    """Misbehaviour on request; flip fields on ``api.faults`` at any time.

    * ``revoked_token``: every API call answers ``401`` (as a wrong token does).
    * ``scoped_endpoints``: endpoint names (``ENDPOINTS``) a scoped token may not call: ``403``.
    * ``reject_next``: the next N scheduling requests answer ``200`` with ``Status: ERROR`` and
      ``reject_message`` (they count against the daily quota, as any request does).
    * ``recover_units`` (unit -> N) / ``recover_next`` (with ``recover_reports``): such jobs
      report ``ERROR`` N times after their first ``QUEUED``, then go on to complete.
    * ``fail_units`` / ``fail_next``: such jobs report ``ERROR`` ``error_tries`` times, then
      ``FAILED`` with impact's words in ``StatusMessage``.
    * ``cancel_units`` / ``cancel_next``: such jobs end ``CANCELLED`` when they would complete.
    * ``expire_units``: the next completed result of each of these units is gone (``Download``
      answers ``410``; once per unit: its replay, or a new job, is kept);
      ``api.expire(job_id)`` does it to one job.
    * ``unreplayable_units``: such jobs are not ``Replayable`` (``Replay`` answers ``403``).
    * ``storm``: the next N API calls answer ``429`` with ``Retry-After: storm_retry_after``.
    * ``hourly_limit``: API calls per clock hour per account before ``429``.
    * A quota already spent: ``api.spend_quota("ClickExport")``; a dropped download:
      ``api.download_faults.arm(...)`` (a shared ``DownloadFaults``).
    """

    revoked_token: bool = False
    scoped_endpoints: set[str] = field(default_factory=set)
    reject_next: int = 0
    reject_message: str = "Invalid request: the export could not be scheduled"
    recover_units: dict[str, int] = field(default_factory=dict)
    recover_next: int = 0
    recover_reports: int = 2
    fail_units: set[str] = field(default_factory=set)
    fail_next: int = 0
    error_tries: int = 5
    cancel_units: set[str] = field(default_factory=set)
    cancel_next: int = 0
    expire_units: set[str] = field(default_factory=set)
    unreplayable_units: set[str] = field(default_factory=set)
    storm: int = 0
    storm_retry_after: int = 1
    hourly_limit: int = 1000
