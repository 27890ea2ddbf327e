"""ExactTarget settings: the JSON schema shown by `--about`, and the typed view the code uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.transports.files import FileSiteSettings

DEFAULT_ENDPOINT = "https://api.dc1.exacttarget.com/integrate.aspx"
MAX_WINDOW_DAYS = 7
PROTOCOLS = ("ftps", "ftp", "sftp")

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
        allowed_values=list(PROTOCOLS),
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
        """Check every setting (bounds, zone, ports, URL, files) with a message naming it."""
        read = SettingsReader(raw, vendor="ExactTarget", prefix="exacttarget.")
        protocol = read.text("file_protocol", "ftps")
        if protocol not in PROTOCOLS:
            raise read.bad(
                "file_protocol",
                f"is {protocol!r}",
                f"set exacttarget.file_protocol to one of {', '.join(PROTOCOLS)}",
            )
        timeout = read.seconds("request_timeout_seconds", 300)
        attempts = read.integer("max_attempts", 6, 1)
        check_host_key = read.boolean("sftp_host_key_check", True)
        tls_verify = read.boolean("file_tls_verify", True)
        known_hosts = read.optional_text("sftp_known_hosts_file")
        if protocol == "sftp" and check_host_key:
            known_hosts = read.existing_file("sftp_known_hosts_file")
        ca_file = read.optional_text("file_tls_ca_file")
        if protocol == "ftps" and tls_verify:
            ca_file = read.existing_file("file_tls_ca_file")
        files = FileSiteSettings(
            protocol=cast(Literal["ftp", "ftps", "sftp"], protocol),
            host=read.host("file_host", "ftp1.exacttarget.com"),
            port=read.port("file_port"),
            username=read.text("file_username", required=True),
            password=read.text("file_password", required=True),
            folder=read.text("file_folder", "/"),
            timeout_seconds=timeout,
            tls_verify=tls_verify,
            tls_ca_file=ca_file,
            sftp_known_hosts_file=known_hosts,
            sftp_host_key_check=check_host_key,
            max_attempts=attempts,
            config_key="exacttarget",
        )
        poll = read.seconds("poll_interval_seconds", 15)
        poll_max = read.seconds("poll_max_interval_seconds", 120)
        if poll_max < poll:
            raise read.bad(
                "poll_max_interval_seconds",
                f"({poll_max:g}) is below poll_interval_seconds ({poll:g})",
                "set exacttarget.poll_max_interval_seconds to poll_interval_seconds or more",
            )
        return cls(
            username=read.text("username", required=True),
            password=read.text("password", required=True),
            files=files,
            endpoint=read.url("endpoint", DEFAULT_ENDPOINT),
            window_days=read.integer("window_days", MAX_WINDOW_DAYS, 1, MAX_WINDOW_DAYS),
            send_lookback_days=read.integer("send_lookback_days", 30, 0),
            lookback_days=read.integer("lookback_days", 1, 0),
            timezone=read.timezone("timezone", "America/Chicago"),
            poll_interval_seconds=poll,
            poll_max_interval_seconds=poll_max,
            job_deadline_seconds=read.seconds("job_deadline_seconds", 21600),
            request_timeout_seconds=timeout,
            max_attempts=attempts,
        )
