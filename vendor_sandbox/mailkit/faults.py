"""The Mailkit sandbox's fault switches: what `json.fcgi` can be asked to get wrong.

"The Nth call of a function" counts every request naming that function since the api started
(failed and retried ones too; `api.calls(function)` lists them), so a fault armed for call N hits
exactly one answer and the retry that follows it is served normally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Growth", "MailkitFaults"]


@dataclass(frozen=True)
class Growth:
    """After the `after_raw_calls`-th raw call (any of the three raw functions) is answered,
    `rows` new rows appear at the end of `function`'s id range."""

    after_raw_calls: int
    function: str
    rows: int


@dataclass
class MailkitFaults:
    """Misbehaviour on request; flip fields on ``api.faults`` at any time.

    * ``unauthorized``: every call answers ``{"error_status": 1, "error": "Unauthorized"}``, as
      a wrong MD5 does.
    * ``disallowed_ip``: every call answers ``{"error_status": 1, "error": "Disallowed IP
      <caller's address>"}``.
    * ``error_on``: function -> N: the Nth call answers ``error_answer`` (HTTP 200).
    * ``shuffle_on``: function -> N: the rows of the Nth answer come in a shuffled order.
    * ``drop_on``: function -> N: the Nth answer announces its full ``Content-Length`` and the
      connection is closed after ``drop_after_bytes`` bytes of the body.
    * ``truncate_on``: function -> N: the Nth answer is cut in half (invalid JSON) but is a
      complete HTTP response (its ``Content-Length`` is the cut length).
    * ``html_on``: function -> N: the Nth answer is an HTML page (HTTP ``html_status``,
      ``text/html``) instead of JSON.
    * ``http_errors``: the next calls (any function) answer these HTTP statuses, FIFO: 500 an
      HTML error page, 503 plain text, 429 plain text with ``Retry-After: <retry_after>``.
    * ``growth``: :class:`Growth` entries, each applied once (rows added while a sync runs);
      ``api.dataset.grown`` says how many rows each function has grown by.
    """

    unauthorized: bool = False
    disallowed_ip: bool = False
    error_on: dict[str, int] = field(default_factory=dict)
    error_answer: dict[str, Any] = field(
        default_factory=lambda: {"error_status": 3, "error": "Temporary failure, try again"}
    )
    shuffle_on: dict[str, int] = field(default_factory=dict)
    drop_on: dict[str, int] = field(default_factory=dict)
    drop_after_bytes: int = 4096
    truncate_on: dict[str, int] = field(default_factory=dict)
    html_on: dict[str, int] = field(default_factory=dict)
    html_status: int = 200
    http_errors: list[int] = field(default_factory=list)
    retry_after: str = "0"
    growth: list[Growth] = field(default_factory=list)
