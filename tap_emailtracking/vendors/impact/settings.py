"""impact.com settings: the JSON schema shown by `--about`, and the typed view the code uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.common_settings import JobSettings, WindowSettings, values_of
from tap_emailtracking.errors import ConfigurationError

DEFAULT_BASE_URL = "https://api.impact.com"
ACCOUNT_TYPES = ("Mediapartners", "Advertisers", "Agencies")
RESULT_FORMATS = ("JSON", "CSV")
CLICK_EXPORTS_PER_DAY = 10
REPORT_EXPORTS_PER_DAY = 100
WINDOW = WindowSettings(window_days=7, lookback_days=1, timezone="America/New_York")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,60}$")

REPORT = th.ObjectType(
    th.Property("name", th.StringType, required=True, description="Stream name suffix."),
    th.Property("report_id", th.StringType, required=True, description="Report id or handle."),
    th.Property(
        "parameters",
        th.ObjectType(additional_properties=True),
        description="Extra query parameters sent as given.",
    ),
    th.Property(
        "key_fields",
        th.ArrayType(th.StringType),
        required=True,
        description="The report columns that identify a row.",
    ),
)

CONFIG_SCHEMA = th.ObjectType(
    th.Property(
        "base_url",
        th.StringType,
        default=DEFAULT_BASE_URL,
        description="The API root.",
    ),
    th.Property(
        "account_sid",
        th.StringType,
        required=True,
        description="Account SID (34 characters starting IR): the Basic auth user.",
    ),
    th.Property(
        "auth_token",
        th.StringType,
        required=True,
        secret=True,
        description="Auth Token: the Basic auth password (a read-only token is enough).",
    ),
    th.Property(
        "account_type",
        th.StringType,
        default="Mediapartners",
        allowed_values=list(ACCOUNT_TYPES),
        description="Mediapartners (partner), Advertisers (brand) or Agencies: the API path.",
    ),
    th.Property(
        "program_ids",
        th.ArrayType(th.StringType),
        description="Export the clicks of these programs (campaigns) only (default: every "
        "program the account lists).",
    ),
    th.Property(
        "result_format",
        th.StringType,
        default="JSON",
        allowed_values=list(RESULT_FORMATS),
        description="Result files asked for: JSON or CSV (both are read by name).",
    ),
    th.Property(
        "click_exports_per_day",
        th.IntegerType,
        default=CLICK_EXPORTS_PER_DAY,
        description="ClickExport requests allowed per day (impact's quota; each day of each "
        "program is one). A backfill past it continues on the next runs.",
    ),
    th.Property(
        "report_exports_per_day",
        th.IntegerType,
        default=REPORT_EXPORTS_PER_DAY,
        description="ReportExport requests allowed per day (impact's quota).",
    ),
    th.Property(
        "reports",
        th.ArrayType(REPORT),
        description="Reports to export, each its own stream `impact_report_<name>`: "
        "{name, report_id, parameters, key_fields}.",
    ),
    *WINDOW.window_properties(
        window="Reports: days per ReportExport job.",
        lookback="Reports: days before the bookmark exported again on each run (impact updates "
        "actions after the event). Re-read rows keep their keys, so targets upsert them.",
        timezone="IANA time zone of the account: it decides which day is over and when the "
        "daily quotas reset.",
    ),
    *JobSettings.job_properties(job="export job"),
)
DESCRIPTION = (
    "impact.com Jobs API (ClickExport per program and day, ReportExport reports). "
    "Leave out to disable the vendor."
)


@dataclass(frozen=True)
class ReportSettings:
    """One configured report: its stream, its handle, its parameters and its key."""

    name: str
    report_id: str
    parameters: Mapping[str, Any]
    key_fields: tuple[str, ...]

    @property
    def stream(self) -> str:
        return f"impact_report_{self.name}"


@dataclass(frozen=True, kw_only=True)
class ImpactSettings(JobSettings, WindowSettings):
    """The vendor's settings, validated and typed (the shared ones inherited)."""

    base_url: str
    account_sid: str
    auth_token: str = field(repr=False)
    account_type: str
    program_ids: tuple[str, ...] | None
    result_format: str
    click_exports_per_day: int
    report_exports_per_day: int
    reports: tuple[ReportSettings, ...]

    @property
    def account_root(self) -> str:
        """`<base_url>/<AccountType>/<AccountSID>`: every path of the account is below it."""
        return f"{self.base_url.rstrip('/')}/{self.account_type}/{self.account_sid}"

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> ImpactSettings:
        """Check every setting with a message naming it."""
        read = SettingsReader(raw, vendor="impact.com", prefix="impact.")
        return cls(
            **values_of(cls.read_jobs(read)),
            **values_of(WINDOW.read_window(read, max_window_days=31)),
            base_url=read.url("base_url", DEFAULT_BASE_URL),
            account_sid=read.text("account_sid", required=True),
            auth_token=read.text("auth_token", required=True),
            account_type=read.choice("account_type", "Mediapartners", ACCOUNT_TYPES),
            program_ids=read.words("program_ids"),
            result_format=read.choice("result_format", "JSON", RESULT_FORMATS),
            click_exports_per_day=read.integer(
                "click_exports_per_day", CLICK_EXPORTS_PER_DAY, 0, 10_000
            ),
            report_exports_per_day=read.integer(
                "report_exports_per_day", REPORT_EXPORTS_PER_DAY, 0, 10_000
            ),
            reports=_reports(read),
        )


def _reports(read: SettingsReader) -> tuple[ReportSettings, ...]:
    raw = read.raw.get("reports") or []
    if not isinstance(raw, list):
        raise read.bad("reports", "is not a list", "set impact.reports to a list of reports")
    out: list[ReportSettings] = []
    for index, entry in enumerate(raw):
        where = f"reports[{index}]"
        if not isinstance(entry, Mapping):
            raise read.bad(where, "is not an object", "give name, report_id and key_fields")
        item = SettingsReader(entry, vendor="impact.com", prefix=f"impact.{where}.")
        name = item.text("name", required=True)
        if not _NAME.match(name):
            raise item.bad(
                "name",
                f"is {name!r}",
                "use lower-case letters, digits and _ (it becomes the stream impact_report_<name>)",
            )
        keys = item.words("key_fields")
        if not keys:
            raise item.bad("key_fields", "is missing or empty", "name the report's key columns")
        parameters = entry.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise item.bad("parameters", "is not an object", "give query parameters as an object")
        out.append(ReportSettings(name, item.text("report_id", required=True), parameters, keys))
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ConfigurationError(
            "impact.reports names a report twice",
            vendor="impact.com",
            action="give every report its own name",
        )
    return tuple(out)
