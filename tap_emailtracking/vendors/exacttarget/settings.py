"""ExactTarget settings: the JSON schema shown by `--about`, and the typed view the code uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.common_settings import (
    JobSettings,
    WindowSettings,
    host_key_properties,
    read_host_key,
    values_of,
)
from tap_emailtracking.transports.files import FileSiteSettings

DEFAULT_ENDPOINT = "https://api.dc1.exacttarget.com/integrate.aspx"
DEFAULT_PROTOCOL = "ftps"
DEFAULT_FILE_HOST = "ftp1.exacttarget.com"
DEFAULT_FILE_FOLDER = "/"
TLS_VERIFY_DEFAULT = True
MAX_WINDOW_DAYS = 7
SEND_LOOKBACK_DAYS = 30
PROTOCOLS = ("ftps", "ftp", "sftp")
WINDOW = WindowSettings(window_days=MAX_WINDOW_DAYS, lookback_days=1, timezone="America/Chicago")

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
        default=DEFAULT_PROTOCOL,
        allowed_values=list(PROTOCOLS),
        description="How to fetch the result ZIP: explicit FTPS (ExactTarget's secure FTP), "
        "plain FTP, or SFTP.",
    ),
    th.Property(
        "file_host",
        th.StringType,
        default=DEFAULT_FILE_HOST,
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
        default=DEFAULT_FILE_FOLDER,
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
        default=TLS_VERIFY_DEFAULT,
        description="FTPS: verify the server certificate. Turn off only for testing.",
    ),
    *host_key_properties(),
    *WINDOW.window_properties(
        window=f"Days of activity per export (1 to {MAX_WINDOW_DAYS}; ExactTarget allows at most "
        f"{MAX_WINDOW_DAYS}).",
        lookback="Days before the bookmark to export again on each run, for activity "
        "ExactTarget records late. Re-read events keep their keys, so targets upsert them.",
        timezone="IANA time zone of the account; dates in the export are local to it.",
    ),
    th.Property(
        "send_lookback_days",
        th.IntegerType,
        default=SEND_LOOKBACK_DAYS,
        description="Include activity on emails sent this many days before each activity "
        "window (sent as `<jobdaterange>`). 0 sends a single `<daterange>`, which returns only "
        "activity on emails sent inside the same window.",
    ),
    *JobSettings.job_properties(job="batch"),
)
DESCRIPTION = (
    "ExactTarget legacy XML API (Tracking BulkAsync all_jobs_ToFTP). "
    "Leave out to disable the vendor."
)


@dataclass(frozen=True, kw_only=True)
class ExactTargetSettings(JobSettings, WindowSettings):
    """The vendor's settings, validated and typed (the shared ones inherited)."""

    username: str
    password: str = field(repr=False)
    files: FileSiteSettings
    endpoint: str
    send_lookback_days: int

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> ExactTargetSettings:
        """Check every setting (bounds, zone, ports, URL, files) with a message naming it."""
        read = SettingsReader(raw, vendor="ExactTarget", prefix="exacttarget.")
        protocol = read.choice("file_protocol", DEFAULT_PROTOCOL, PROTOCOLS)
        jobs = cls.read_jobs(read)
        check_host_key, known_hosts = read_host_key(read, sftp=protocol == "sftp")
        tls_verify = read.boolean("file_tls_verify", TLS_VERIFY_DEFAULT)
        ca_file = read.optional_text("file_tls_ca_file")
        if protocol == "ftps" and tls_verify:
            ca_file = read.existing_file("file_tls_ca_file")
        files = FileSiteSettings(
            protocol=cast(Literal["ftp", "ftps", "sftp"], protocol),
            host=read.host("file_host", DEFAULT_FILE_HOST),
            port=read.port("file_port"),
            username=read.text("file_username", required=True),
            password=read.text("file_password", required=True),
            folder=read.text("file_folder", DEFAULT_FILE_FOLDER),
            timeout_seconds=jobs.request_timeout_seconds,
            tls_verify=tls_verify,
            tls_ca_file=ca_file,
            sftp_known_hosts_file=known_hosts,
            sftp_host_key_check=check_host_key,
            max_attempts=jobs.max_attempts,
            config_key="exacttarget",
        )
        return cls(
            **values_of(jobs),
            **values_of(WINDOW.read_window(read, max_window_days=MAX_WINDOW_DAYS)),
            username=read.text("username", required=True),
            password=read.text("password", required=True),
            files=files,
            endpoint=read.url("endpoint", DEFAULT_ENDPOINT),
            send_lookback_days=read.integer("send_lookback_days", SEND_LOOKBACK_DAYS, 0),
        )
