"""Pinpointe settings: the JSON schema shown by `--about`, and the typed view the code uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.common_settings import JobSettings, values_of

SUBSCRIBER_KINDS = ("lists", "segments", "tags")
NOTIFY_TYPES = ("email", "webhook")
FILE_FORMATS = ("json", "csv")
ACTIVITY_LOOKBACK_DAYS = 7
PAGE_SIZE = 500
STATUS_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000
API_PATH = "/apijson.php"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

CONFIG_SCHEMA = th.ObjectType(
    th.Property(
        "host",
        th.StringType,
        required=True,
        description="Your account's address: the host you log in at (naNN.mypinpointe.com for "
        "shared instances, your own for enterprise accounts), or a full URL. https:// and "
        "/apijson.php are added when missing.",
    ),
    th.Property(
        "username",
        th.StringType,
        required=True,
        description="The Pinpointe user the API token belongs to.",
    ),
    th.Property(
        "usertoken",
        th.StringType,
        required=True,
        secret=True,
        description="API token (Account Settings => API + Connectors).",
    ),
    th.Property(
        "notify_type",
        th.StringType,
        default="email",
        allowed_values=list(NOTIFY_TYPES),
        description="Pinpointe requires every asynchronous export to notify someone when it is "
        "done: `email` or `webhook`. The tap itself polls AsyncJobStatus and needs no message.",
    ),
    th.Property(
        "notify_value",
        th.StringType,
        required=True,
        description="The email address or webhook URL those notifications go to.",
    ),
    th.Property(
        "subscriber_exports",
        th.ArrayType(th.StringType),
        default=list(SUBSCRIBER_KINDS),
        description="Which subscriber exports run: any of lists, segments, tags (their streams "
        "must also be selected).",
    ),
    th.Property(
        "list_ids",
        th.ArrayType(th.StringType),
        description="Export the subscribers of these lists only (default: every list).",
    ),
    th.Property(
        "segment_ids",
        th.ArrayType(th.StringType),
        description="Export the subscribers of these segments only (default: every segment).",
    ),
    th.Property(
        "tag_ids",
        th.ArrayType(th.StringType),
        description="Export the subscribers of these tags only (default: every tag).",
    ),
    th.Property(
        "segment_file_format",
        th.StringType,
        default="json",
        allowed_values=list(FILE_FORMATS),
        description="The result file format asked of segment exports (json or csv); both are "
        "read the same way.",
    ),
    th.Property(
        "activity_lookback_days",
        th.IntegerType,
        default=ACTIVITY_LOOKBACK_DAYS,
        description="Each run reads again the contact activity of sends started this many days "
        "before the last send read (opens and clicks keep arriving after a send). Re-read "
        "events keep their keys, so targets upsert them.",
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=PAGE_SIZE,
        description=f"Records per page of lists, segments, tags and sends (1 to "
        f"{MAX_PAGE_SIZE}); Pinpointe returns everything at once when not paged.",
    ),
    th.Property(
        "status_page_size",
        th.IntegerType,
        default=STATUS_PAGE_SIZE,
        description=f"Job statuses per AsyncJobStatus page (1 to {MAX_PAGE_SIZE}).",
    ),
    *JobSettings.job_properties(job="export job"),
)
DESCRIPTION = (
    "Pinpointe JSON API (asynchronous subscriber and newsletter contact exports). "
    "Leave out to disable the vendor."
)


def api_url(host: str) -> str:
    """The JSON API URL of a host setting: a bare host gets https:// and /apijson.php."""
    value = host.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    if not value.lower().endswith(API_PATH):
        value += API_PATH
    return value


@dataclass(frozen=True, kw_only=True)
class PinpointeSettings(JobSettings):
    """The vendor's settings, validated and typed (the shared ones inherited)."""

    api_url: str
    username: str
    usertoken: str = field(repr=False)
    notify_type: str
    notify_value: str
    subscriber_exports: tuple[str, ...]
    list_ids: tuple[str, ...] | None
    segment_ids: tuple[str, ...] | None
    tag_ids: tuple[str, ...] | None
    segment_file_format: str
    activity_lookback_days: int
    page_size: int
    status_page_size: int

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> PinpointeSettings:
        """Check every setting with a message naming it."""
        read = SettingsReader(raw, vendor="Pinpointe", prefix="pinpointe.")
        url = api_url(read.text("host", required=True))
        SettingsReader({"host": url}, vendor="Pinpointe", prefix="pinpointe.").url("host", url)
        notify_type = read.choice("notify_type", "email", NOTIFY_TYPES)
        notify_value = read.text("notify_value", required=True)
        if notify_type == "email" and not _EMAIL.match(notify_value):
            raise read.bad(
                "notify_value",
                f"is {notify_value!r}, not an email address",
                "set pinpointe.notify_value to the address Pinpointe may notify",
            )
        if notify_type == "webhook":
            read.url("notify_value", notify_value)
        kinds = read.words("subscriber_exports", SUBSCRIBER_KINDS)
        return cls(
            **values_of(cls.read_jobs(read)),
            api_url=url,
            username=read.text("username", required=True),
            usertoken=read.text("usertoken", required=True),
            notify_type=notify_type,
            notify_value=notify_value,
            subscriber_exports=SUBSCRIBER_KINDS if kinds is None else kinds,
            list_ids=read.words("list_ids"),
            segment_ids=read.words("segment_ids"),
            tag_ids=read.words("tag_ids"),
            segment_file_format=read.choice("segment_file_format", "json", FILE_FORMATS),
            activity_lookback_days=read.integer(
                "activity_lookback_days", ACTIVITY_LOOKBACK_DAYS, 0
            ),
            page_size=read.integer("page_size", PAGE_SIZE, 1, MAX_PAGE_SIZE),
            status_page_size=read.integer("status_page_size", STATUS_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        )
