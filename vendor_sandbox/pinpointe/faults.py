"""The Pinpointe sandbox's switches: answer shapes the docs leave open, and faults on request.

Units of work are named `list:<listid>`, `segment:<segmentid>`, `tag:<tagid>` and
`send:<statid>` (a job over several ids joins them with commas: `list:1,2`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PinpointeFaults", "PinpointeShapes"]


@dataclass
class PinpointeShapes:
    """Every shape `docs/pinpointe.md` says the tap accepts; flip fields on ``api.shapes``.

    None means the per-call default, chosen so the defaults already differ across calls:

    * ``pagination``: ``"top"`` (a top-level ``pagination``) or ``"data"`` (inside ``data``).
      Defaults: GetLists, GetTags, AsyncJobStatus top; GetSegments, GetNewslettersSent data.
      Records: GetLists ``data`` is the list (``data.item`` when pagination is inside it),
      GetSegments ``data.item``, GetTags ``data.items``, GetNewslettersSent
      ``data.newsletters`` (next to ``data.count``), AsyncJobStatus ``data.jobs``.
    * ``job_id_key``: the key of the job id in an async call's ``data`` and in status records:
      ``jobid``, ``job_id``, ``jobId``, or ``bare`` (``data`` is the id string; status records
      then use ``jobid``). Defaults: lists ``jobid``, segments ``job_id``, tags ``jobId``,
      sends ``jobid``; status records ``jobid``.
    * ``link_key``: where a done record's link is: ``url``, ``downloadurl`` or ``result.url``
      (``"result": {"url": ...}``). Defaults: lists ``url``, segments ``downloadurl``, tags
      ``result.url``, sends ``url``. ``relative_links``: the link is a path, not absolute.
    * ``done_word``: the status of a finished job (default ``complete``).
    * ``json_holder``: the JSON result file: ``array``, ``object`` (``{"count": "N",
      "subscribers"|"activity": [...]}``) or ``lines`` (JSON lines). Defaults: lists object,
      segments array, tags lines, sends array.
    * ``activity``: ``flat`` (one record per event) or ``nested`` (one per contact, with
      ``opens`` and ``clicks`` lists).
    * ``time_style``: activity times: ``datetime`` (``YYYY-MM-DD HH:MM:SS`` UTC), ``epoch``,
      ``zulu`` or ``offset`` (ISO 8601 at +02:00).
    * ``errormessage_list``: ``errormessage`` is a list of strings; ``error_status``: the
      failure word (``FAILED`` or ``ERROR``).
    """

    pagination: str | None = None
    job_id_key: str | None = None
    link_key: str | None = None
    relative_links: bool = False
    done_word: str = "complete"
    json_holder: str | None = None
    activity: str = "flat"
    time_style: str = "datetime"
    errormessage_list: bool = False
    error_status: str = "FAILED"


@dataclass
class PinpointeFaults:
    """Misbehaviour on request; flip fields on ``api.faults`` at any time.

    * ``revoked_token``: every call answers 401 ``Unable to verify user credentials``.
    * ``html_pages``: the next N calls answer an HTML maintenance page (HTTP ``html_status``).
    * ``fail_units`` / ``fail_next``: jobs of these units, or the next N jobs submitted, end
      ``failed`` (with a ``message``) when they would have completed.
    * ``stall_units`` / ``stall_next``: such jobs stay ``processing`` forever.
    * ``forget_units``: unit -> N: the next N jobs of that unit are forgotten at their second
      status report (after one ``waiting``): from then on they are unknown ("Jobs not found"
      when no other asked id is known, else left out of the answer).
    * ``malformed_units``: the result file is cut in the middle of its second record.
    * ``unknown_status_units``: such jobs answer ``unknown_status_word`` forever.
    * The job limit is the board's: ``api.jobs.configure(limit=N)`` (or ``JobSettings.limit``)
      answers FAILED ``Too many asynchronous jobs in progress`` while N jobs are in flight.
    * Dropped downloads: ``api.download_faults`` (a shared ``DownloadFaults``).
    """

    revoked_token: bool = False
    html_pages: int = 0
    html_status: int = 200
    fail_units: set[str] = field(default_factory=set)
    fail_next: int = 0
    stall_units: set[str] = field(default_factory=set)
    stall_next: int = 0
    forget_units: dict[str, int] = field(default_factory=dict)
    malformed_units: set[str] = field(default_factory=set)
    unknown_status_units: set[str] = field(default_factory=set)
    unknown_status_word: str = "on hold"
