"""Acoustic Campaign settings: the JSON schema shown by `--about`, and the typed view the code uses.

Invalid job-definition settings (a sixth custom column, a frequency BEX does not offer) are
rejected by the schema itself, so they fail at config validation, before anything is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader

EVENT_TYPES = (
    "emailSend",
    "emailOpen",
    "emailClick",
    "emailBounce",
    "emailOptOut",
    "emailSuppressed",
)
MAILING_TYPES = ("SendExperience", "Programs", "AMG", "AutoResponder", "ABTest")
FREQUENCIES = (1, 2, 3, 4, 6, 8, 12, 24)
FILE_FORMATS = ("CSV", "PSV", "TSV")
MAX_CUSTOM_COLUMNS = 5
DEFAULT_EXPORT_FILE_NAME = "Recipient Event Bulk Export_"
# Pod -> host suffix (XML API overview; pod B and pilot from client code).
PODS = {
    "1": "us-1",
    "2": "us-2",
    "3": "us-3",
    "4": "us-4",
    "5": "us-5",
    "6": "eu-1",
    "7": "ap-2",
    "8": "ca-1",
    "9": "us-6",
    "A": "ap-1",
    "B": "ap-3",
}

DESCRIPTION = (
    "Acoustic Campaign: Bulk Event Export files over SFTP, or Raw Recipient Data Export for orgs "
    "without BEX. Leave out to disable the vendor."
)

CONFIG_SCHEMA = th.ObjectType(
    th.Property("pod", th.StringType, default="1", description="Pod of the org (1-9, A, B)."),
    th.Property(
        "api_host",
        th.StringType,
        description="API base URL; default https://api-campaign-<pod>.goacoustic.com.",
    ),
    th.Property("client_id", th.StringType, required=True, description="OAuth client id."),
    th.Property(
        "client_secret", th.StringType, required=True, secret=True, description="OAuth secret."
    ),
    th.Property(
        "refresh_token",
        th.StringType,
        required=True,
        secret=True,
        description="OAuth refresh token of the org admin (BEX needs the org admin).",
    ),
    th.Property(
        "export_mode",
        th.StringType,
        default="bex",
        allowed_values=["bex", "raw_recipient_data"],
        description="bex: read the Bulk Event Export files; raw_recipient_data: run "
        "RawRecipientDataExport jobs (orgs without BEX).",
    ),
    th.Property(
        "contact_source_id",
        th.StringType,
        description="BEX: id of the database whose events are exported (contactSourceId).",
    ),
    th.Property(
        "ftp_user_id",
        th.StringType,
        description="BEX: login email of the org admin whose SFTP folder receives the files.",
    ),
    th.Property(
        "manage_job_definition",
        th.BooleanType,
        default=False,
        description="BEX: create the job definition when missing and update it when it "
        "differs from these settings. Off: only read it.",
    ),
    th.Property(
        "event_types",
        th.ArrayType(th.StringType(allowed_values=list(EVENT_TYPES))),
        description="Event types to export (default all). Rows of other types are not emitted.",
    ),
    th.Property(
        "mailing_types",
        th.ArrayType(th.StringType(allowed_values=list(MAILING_TYPES))),
        description="BEX: mailing types to export (default all).",
    ),
    th.Property(
        "custom_columns",
        th.ArrayType(th.StringType),
        description="Up to 5 database columns added to each event, in this order.",
    ),
    th.Property(
        "export_file_name",
        th.StringType,
        default=DEFAULT_EXPORT_FILE_NAME,
        description="BEX: the term file names start with (exportFileName).",
    ),
    th.Property(
        "file_format",
        th.StringType,
        default="CSV",
        allowed_values=list(FILE_FORMATS),
        description="BEX: CSV, PSV or TSV.",
    ),
    th.Property(
        "job_frequency_hours",
        th.IntegerType(allowed_values=list(FREQUENCIES)),
        default=24,
        description="BEX: hours between file rotations (1, 2, 3, 4, 6, 8, 12 or 24).",
    ),
    th.Property(
        "sftp_host",
        th.StringType,
        description="SFTP host; default transfer-campaign-<pod>.goacoustic.com.",
    ),
    th.Property("sftp_port", th.IntegerType, default=22, description="SFTP port."),
    th.Property(
        "sftp_username",
        th.StringType,
        default="oauth",
        description="SFTP user; 'oauth' logs in with the current access token.",
    ),
    th.Property(
        "sftp_password",
        th.StringType,
        secret=True,
        description="SFTP password, when sftp_username is not 'oauth'.",
    ),
    th.Property(
        "sftp_folder", th.StringType, default="/download", description="Folder of the exports."
    ),
    th.Property(
        "sftp_known_hosts_file",
        th.StringType,
        description="known_hosts file used to check the SFTP server (default ~/.ssh/known_hosts).",
    ),
    th.Property(
        "sftp_host_key_check",
        th.BooleanType,
        default=True,
        description="Refuse SFTP servers whose key is not known. False only for a local sandbox.",
    ),
    th.Property(
        "file_settle_seconds",
        th.NumberType,
        default=10,
        description="BEX: a file is read only if its size and time do not change over this long "
        "(a file still being written is left for the next run).",
    ),
    th.Property(
        "marker_history_days",
        th.IntegerType,
        default=7,
        description="BEX: how far back (by the time in the file name) files that arrive late "
        "are still noticed.",
    ),
    th.Property(
        "on_bad_row",
        th.StringType,
        default="fail",
        allowed_values=["fail", "skip"],
        description="A malformed row fails the sync naming file and line (fail), or is logged, "
        "counted and skipped (skip).",
    ),
    th.Property(
        "timezone",
        th.StringType,
        default="America/New_York",
        description="IANA zone of times written without a zone (RRDE Event Timestamp).",
    ),
    th.Property(
        "window_days",
        th.IntegerType,
        default=1,
        description="Raw recipient data: days of activity per export job.",
    ),
    th.Property(
        "lookback_days",
        th.IntegerType,
        default=1,
        description="Raw recipient data: days before the bookmark exported again on each run.",
    ),
    th.Property(
        "poll_interval_seconds",
        th.NumberType,
        default=15,
        description="Raw recipient data: first wait between job status checks; grows each poll.",
    ),
    th.Property(
        "poll_max_interval_seconds",
        th.NumberType,
        default=120,
        description="Raw recipient data: longest wait between job status checks.",
    ),
    th.Property(
        "job_deadline_seconds",
        th.NumberType,
        default=21600,
        description="Raw recipient data: how long one run waits for a job before failing (the "
        "job id is kept in state and polled again by the next run).",
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType,
        default=300,
        description="Read timeout of one API call or SFTP operation.",
    ),
    th.Property(
        "max_attempts",
        th.IntegerType,
        default=6,
        description="Attempts per API call or download before giving up on transient errors.",
    ),
)


def _limit_custom_columns(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON schema cannot be told maxItems through the SDK's helpers; add it here."""
    schema["properties"]["custom_columns"]["maxItems"] = MAX_CUSTOM_COLUMNS
    return schema


CONFIG_SCHEMA_DICT = _limit_custom_columns(CONFIG_SCHEMA.to_dict())


@dataclass(frozen=True)
class AcousticSettings:
    """The vendor's settings, validated and typed."""

    api_host: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    export_mode: Literal["bex", "raw_recipient_data"]
    contact_source_id: str | None
    ftp_user_id: str | None
    manage_job_definition: bool
    event_types: tuple[str, ...]
    mailing_types: tuple[str, ...]
    custom_columns: tuple[str, ...]
    export_file_name: str
    file_format: str
    job_frequency_hours: int
    sftp_host: str
    sftp_port: int
    sftp_username: str
    sftp_password: str | None = field(repr=False)
    sftp_folder: str
    sftp_known_hosts_file: str | None
    sftp_host_key_check: bool
    file_settle_seconds: float
    marker_history_days: int
    on_bad_row: Literal["fail", "skip"]
    timezone: str
    window_days: int
    lookback_days: int
    poll_interval_seconds: float
    poll_max_interval_seconds: float
    job_deadline_seconds: float
    request_timeout_seconds: float
    max_attempts: int

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> AcousticSettings:
        """Fill defaults from the pod, and check every setting with a message naming it."""
        read = SettingsReader(raw, vendor="Acoustic", prefix="acoustic.")
        pod = read.text("pod", "1").upper()
        suffix = PODS.get(pod)
        if suffix is None and not (read.present("api_host") and read.present("sftp_host")):
            raise read.bad(
                "pod",
                f"{pod!r} is unknown",
                "set acoustic.pod (1-9, A, B) or acoustic.api_host and acoustic.sftp_host",
            )
        mode = read.choice("export_mode", "bex", ("bex", "raw_recipient_data"))
        contact_source_id = read.optional_text("contact_source_id")
        if mode == "bex" and not contact_source_id:
            raise read.bad(
                "contact_source_id",
                "is missing: export_mode bex needs the database id",
                "set acoustic.contact_source_id to the id of the database whose events you want",
            )
        manage = read.boolean("manage_job_definition", False)
        ftp_user_id = read.optional_text("ftp_user_id")
        if manage and not ftp_user_id:
            raise read.bad(
                "ftp_user_id",
                "is missing: manage_job_definition needs the org admin's login",
                "set acoustic.ftp_user_id to the org admin's login email",
            )
        username = read.text("sftp_username", "oauth", required=True)
        password = read.optional_text("sftp_password")
        if username != "oauth" and not password:
            raise read.bad(
                "sftp_password",
                f"is missing: sftp_username {username!r} needs it",
                "set acoustic.sftp_password, or sftp_username to oauth (the access token logs in)",
            )
        custom = read.words("custom_columns") or ()
        if len(custom) > MAX_CUSTOM_COLUMNS or len(set(custom)) != len(custom):
            raise read.bad(
                "custom_columns",
                "must be at most 5 distinct names",
                "remove columns from acoustic.custom_columns",
            )
        frequency = read.integer("job_frequency_hours", 24, 1, 24)
        if frequency not in FREQUENCIES:
            raise read.bad(
                "job_frequency_hours",
                f"is {frequency}",
                f"set acoustic.job_frequency_hours to one of {', '.join(map(str, FREQUENCIES))}",
            )
        check_host_key = read.boolean("sftp_host_key_check", True)
        known_hosts = read.optional_text("sftp_known_hosts_file")
        if check_host_key:
            known_hosts = read.existing_file("sftp_known_hosts_file")
        poll = read.seconds("poll_interval_seconds", 15)
        poll_max = read.seconds("poll_max_interval_seconds", 120)
        if poll_max < poll:
            raise read.bad(
                "poll_max_interval_seconds",
                f"({poll_max:g}) is below poll_interval_seconds ({poll:g})",
                "set acoustic.poll_max_interval_seconds to poll_interval_seconds or more",
            )
        return cls(
            api_host=read.url("api_host", f"https://api-campaign-{suffix}.goacoustic.com").rstrip(
                "/"
            ),
            client_id=read.text("client_id", required=True),
            client_secret=read.text("client_secret", required=True),
            refresh_token=read.text("refresh_token", required=True),
            export_mode=cast(Literal["bex", "raw_recipient_data"], mode),
            contact_source_id=contact_source_id,
            ftp_user_id=ftp_user_id,
            manage_job_definition=manage,
            event_types=read.words("event_types", EVENT_TYPES) or EVENT_TYPES,
            mailing_types=read.words("mailing_types", MAILING_TYPES) or MAILING_TYPES,
            custom_columns=custom,
            export_file_name=read.text("export_file_name", DEFAULT_EXPORT_FILE_NAME),
            file_format=read.choice(
                "file_format", "CSV", (*FILE_FORMATS, *(f.lower() for f in FILE_FORMATS))
            ).upper(),
            job_frequency_hours=frequency,
            sftp_host=read.host("sftp_host", f"transfer-campaign-{suffix}.goacoustic.com"),
            sftp_port=read.port("sftp_port", 22) or 22,
            sftp_username=username,
            sftp_password=password,
            sftp_folder=read.text("sftp_folder", "/download", required=True),
            sftp_known_hosts_file=known_hosts,
            sftp_host_key_check=check_host_key,
            file_settle_seconds=read.seconds("file_settle_seconds", 10, zero=True),
            marker_history_days=read.integer("marker_history_days", 7, 0),
            on_bad_row=cast(
                Literal["fail", "skip"], read.choice("on_bad_row", "fail", ("fail", "skip"))
            ),
            timezone=read.timezone("timezone", "America/New_York"),
            window_days=read.integer("window_days", 1, 1),
            lookback_days=read.integer("lookback_days", 1, 0),
            poll_interval_seconds=poll,
            poll_max_interval_seconds=poll_max,
            job_deadline_seconds=read.seconds("job_deadline_seconds", 21600),
            request_timeout_seconds=read.seconds("request_timeout_seconds", 300),
            max_attempts=read.integer("max_attempts", 6, 1),
        )
