"""Mailkit settings: the JSON schema shown by `--about`, and the typed view the code uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.transports.http import HttpPolicy

DEFAULT_ENDPOINT = "https://api.mailkit.eu/json.fcgi"
MAX_PAGE_SIZE = 25_000
RAW_CALL_INTERVAL_SECONDS = 2.0
TIMEZONE = "Europe/Prague"
REQUEST_TIMEOUT_SECONDS = 300.0
MAX_ATTEMPTS = 6

CONFIG_SCHEMA = th.ObjectType(
    th.Property(
        "endpoint",
        th.StringType,
        default=DEFAULT_ENDPOINT,
        description="The JSON API URL.",
    ),
    th.Property(
        "client_id",
        th.StringType,
        required=True,
        description="API ID (Profile / Integration / API settings).",
    ),
    th.Property(
        "client_md5",
        th.StringType,
        required=True,
        secret=True,
        description="MD5 code (Profile / Integration / API settings).",
    ),
    th.Property(
        "timezone",
        th.StringType,
        default=TIMEZONE,
        description="IANA time zone of the account: Mailkit writes times without a zone.",
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=MAX_PAGE_SIZE,
        description=f"Rows per raw call (1 to {MAX_PAGE_SIZE}, Mailkit's cap).",
    ),
    th.Property(
        "raw_call_interval_seconds",
        th.NumberType,
        default=RAW_CALL_INTERVAL_SECONDS,
        description="Least time between two calls (Mailkit limits how often the raw functions "
        "may be called); calls are never made in parallel.",
    ),
    th.Property(
        "campaign_ids",
        th.ArrayType(th.StringType),
        description="Read raw rows of these campaigns (ID_message) only, each with its own "
        "bookmark; default every campaign in one walk.",
    ),
    th.Property(
        "send_ids",
        th.ArrayType(th.StringType),
        description="Read raw rows of these sends (ID_send) only, each with its own bookmark "
        "(with campaign_ids: every pair).",
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType,
        default=REQUEST_TIMEOUT_SECONDS,
        description="Read timeout of one API call.",
    ),
    th.Property(
        "max_attempts",
        th.IntegerType,
        default=MAX_ATTEMPTS,
        description="Attempts per API call before giving up on transient errors (5xx, 429, "
        "timeouts, dropped connections).",
    ),
)
DESCRIPTION = (
    "Mailkit JSON API (raw bounces, messages and responses, paged by the last log id). "
    "Leave out to disable the vendor."
)


@dataclass(frozen=True, kw_only=True)
class MailkitSettings:
    """The vendor's settings, validated and typed."""

    endpoint: str
    client_id: str
    client_md5: str = field(repr=False)
    timezone: str
    page_size: int
    raw_call_interval_seconds: float
    campaign_ids: tuple[str, ...] | None
    send_ids: tuple[str, ...] | None
    request_timeout_seconds: float
    max_attempts: int

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> MailkitSettings:
        """Check every setting with a message naming it."""
        read = SettingsReader(raw, vendor="Mailkit", prefix="mailkit.")
        return cls(
            endpoint=read.url("endpoint", DEFAULT_ENDPOINT),
            client_id=read.text("client_id", required=True),
            client_md5=read.text("client_md5", required=True),
            timezone=read.timezone("timezone", TIMEZONE),
            page_size=read.integer("page_size", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            raw_call_interval_seconds=read.seconds(
                "raw_call_interval_seconds", RAW_CALL_INTERVAL_SECONDS, zero=True
            ),
            campaign_ids=read.words("campaign_ids"),
            send_ids=read.words("send_ids"),
            request_timeout_seconds=read.seconds(
                "request_timeout_seconds", REQUEST_TIMEOUT_SECONDS
            ),
            max_attempts=read.integer("max_attempts", MAX_ATTEMPTS, 1),
        )

    def http_policy(self) -> HttpPolicy:
        """Retries and read timeout of the API calls."""
        return HttpPolicy(
            max_attempts=self.max_attempts, read_timeout_seconds=self.request_timeout_seconds
        )
