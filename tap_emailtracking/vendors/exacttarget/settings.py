"""ExactTarget settings: the JSON schema shown by `--about`, and the typed view the code uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from singer_sdk import typing as th

from tap_emailtracking.errors import ConfigurationError
from tap_emailtracking.timestamps import zone
from tap_emailtracking.transports.files import FileSiteSettings

DEFAULT_ENDPOINT = "https://api.dc1.exacttarget.com/integrate.aspx"
MAX_WINDOW_DAYS = 7

CONFIG_SCHEMA = th.ObjectType(
    th.Property("username", th.StringType, required=True, description="XML API user name."),
    th.Property(
        "password", th.StringType, required=True, secret=True, description="XML API password."
    ),
    th.Property(
        "endpoint",
        th.StringType,
        default=DEFAULT_ENDPOINT,
        description="The XML API URL (…/integrate.aspx) of your instance, e.g. "
        "https://api.s4.exacttarget.com/integrate.aspx.",
    ),
    th.Property(
        "file_protocol",
        th.StringType,
        default="ftps",
        allowed_values=["ftps", "ftp", "sftp"],
        description="How to fetch the result ZIP: explicit FTPS (ExactTarget's secure FTP), "
        "plain FTP, or SFTP.",
    ),
    th.Property(
        "file_host",
        th.StringType,
        default="ftp1.exacttarget.com",
        description="Host of the file site that receives the result ZIPs.",
    ),
    th.Property(
        "file_port",
        th.IntegerType,
        description="Port of the file site (default 21, or 22 for SFTP).",
    ),
    th.Property("file_username", th.StringType, required=True, description="File site user name."),
    th.Property(
        "file_password",
        th.StringType,
        required=True,
        secret=True,
        description="File site password.",
    ),
    th.Property(
        "file_folder",
        th.StringType,
        default="/",
        description="Folder holding the result ZIPs (e.g. `/`, `/<memberID>` or `/Export`).",
    ),
    th.Property(
        "file_tls_ca_file",
        th.StringType,
        description="FTPS: a CA bundle (PEM) to trust in addition to the system's.",
    ),
    th.Property(
        "file_tls_verify",
        th.BooleanType,
        default=True,
        description="FTPS: verify the server certificate. Turn off only for testing.",
    ),
    th.Property(
        "sftp_known_hosts_file",
        th.StringType,
        description="SFTP: known_hosts file used to check the server key "
        "(default ~/.ssh/known_hosts).",
    ),
    th.Property(
        "sftp_host_key_check",
        th.BooleanType,
        default=True,
        description="SFTP: refuse servers whose key is not in known_hosts. Setting false accepts "
        "any key (only for a local sandbox).",
    ),
    th.Property(
        "window_days",
        th.IntegerType,
        default=MAX_WINDOW_DAYS,
        description="Days of activity per export (1 to 7; ExactTarget allows at most 7).",
    ),
    th.Property(
        "send_lookback_days",
        th.IntegerType,
        default=30,
        description="Include activity on emails sent this many days before each activity "
        "window (sent as `<jobdaterange>`). 0 sends a single `<daterange>`, which returns only "
        "activity on emails sent inside the same window.",
    ),
    th.Property(
        "lookback_days",
        th.IntegerType,
        default=1,
        description="Days before the bookmark to export again on each run, for activity "
        "ExactTarget records late. Re-read events keep their keys, so targets upsert them.",
    ),
    th.Property(
        "timezone",
        th.StringType,
        default="America/Chicago",
        description="IANA time zone of the account; dates in the export are local to it.",
    ),
    th.Property(
        "poll_interval_seconds",
        th.NumberType,
        default=15,
        description="First wait between batch status checks; grows by half each poll.",
    ),
    th.Property(
        "poll_max_interval_seconds",
        th.NumberType,
        default=120,
        description="Longest wait between batch status checks.",
    ),
    th.Property(
        "job_deadline_seconds",
        th.NumberType,
        default=21600,
        description="How long one run waits for a batch before failing (the batch id is kept "
        "in state and polled again by the next run).",
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType,
        default=300,
        description="Read timeout of one API call or file-site operation.",
    ),
    th.Property(
        "max_attempts",
        th.IntegerType,
        default=6,
        description="Attempts per API call or download before giving up on transient errors.",
    ),
)
DESCRIPTION = (
    "ExactTarget legacy XML API (Tracking BulkAsync all_jobs_ToFTP). "
    "Leave out to disable the vendor."
)


@dataclass(frozen=True)
class ExactTargetSettings:
    """The vendor's settings, validated and typed."""

    username: str
    password: str = field(repr=False)
    files: FileSiteSettings
    endpoint: str = DEFAULT_ENDPOINT
    window_days: int = MAX_WINDOW_DAYS
    send_lookback_days: int = 30
    lookback_days: int = 1
    timezone: str = "America/Chicago"
    poll_interval_seconds: float = 15.0
    poll_max_interval_seconds: float = 120.0
    job_deadline_seconds: float = 21600.0
    request_timeout_seconds: float = 300.0
    max_attempts: int = 6

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> ExactTargetSettings:
        """Validate what JSON schema cannot (ranges, zone names) with actionable messages."""

        def bad(what: str, action: str) -> ConfigurationError:
            return ConfigurationError(what, vendor="ExactTarget", action=action)

        window_days = int(raw.get("window_days", MAX_WINDOW_DAYS))
        if not 1 <= window_days <= MAX_WINDOW_DAYS:
            raise bad(
                f"window_days is {window_days}, outside 1..{MAX_WINDOW_DAYS}",
                "set exacttarget.window_days between 1 and 7 (ExactTarget's maximum range)",
            )
        for name in ("send_lookback_days", "lookback_days"):
            if int(raw.get(name, 0)) < 0:
                raise bad(f"{name} is negative", f"set exacttarget.{name} to 0 or more")
        tz_name = str(raw.get("timezone", "America/Chicago"))
        try:
            zone(tz_name)
        except ValueError:
            raise bad(
                f"timezone {tz_name!r} is not an IANA time zone",
                "set exacttarget.timezone to a name like America/Chicago or Europe/Prague",
            ) from None
        protocol = str(raw.get("file_protocol", "ftps"))
        timeout = float(raw.get("request_timeout_seconds", 300))
        attempts = int(raw.get("max_attempts", 6))
        if attempts < 1:
            raise bad("max_attempts is below 1", "set exacttarget.max_attempts to 1 or more")
        files = FileSiteSettings(
            protocol=cast(Literal["ftp", "ftps", "sftp"], protocol),
            host=str(raw.get("file_host", "ftp1.exacttarget.com")),
            port=raw.get("file_port"),
            username=str(raw["file_username"]),
            password=str(raw["file_password"]),
            folder=str(raw.get("file_folder", "/")),
            timeout_seconds=timeout,
            tls_verify=bool(raw.get("file_tls_verify", True)),
            tls_ca_file=raw.get("file_tls_ca_file"),
            sftp_known_hosts_file=raw.get("sftp_known_hosts_file"),
            sftp_host_key_check=bool(raw.get("sftp_host_key_check", True)),
            max_attempts=attempts,
            config_key="exacttarget",
        )
        return cls(
            username=str(raw["username"]),
            password=str(raw["password"]),
            files=files,
            endpoint=str(raw.get("endpoint", DEFAULT_ENDPOINT)),
            window_days=window_days,
            send_lookback_days=int(raw.get("send_lookback_days", 30)),
            lookback_days=int(raw.get("lookback_days", 1)),
            timezone=tz_name,
            poll_interval_seconds=float(raw.get("poll_interval_seconds", 15)),
            poll_max_interval_seconds=float(raw.get("poll_max_interval_seconds", 120)),
            job_deadline_seconds=float(raw.get("job_deadline_seconds", 21600)),
            request_timeout_seconds=timeout,
            max_attempts=attempts,
        )
