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
from tap_emailtracking.common_settings import (
    JobSettings,
    WindowSettings,
    host_key_properties,
    read_host_key,
    values_of,
)

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
DEFAULT_POD = "1"
DEFAULT_MODE = "bex"
EXPORT_MODES = ("bex", "raw_recipient_data")
DEFAULT_FILE_FORMAT = "CSV"
DEFAULT_FREQUENCY_HOURS = 24
DEFAULT_SFTP_PORT = 22
DEFAULT_SFTP_USERNAME = "oauth"
DEFAULT_SFTP_FOLDER = "/download"
DEFAULT_SETTLE_SECONDS = 10
DEFAULT_MARKER_HISTORY_DAYS = 7
BAD_ROW_CHOICES = ("fail", "skip")
RRDE = "Raw recipient data. "
WINDOW = WindowSettings(window_days=1, lookback_days=1, timezone="America/New_York")
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
    th.Property(
        "pod", th.StringType, default=DEFAULT_POD, description="Pod of the org (1-9, A, B)."
    ),
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
        default=DEFAULT_MODE,
        allowed_values=list(EXPORT_MODES),
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
        default=DEFAULT_FILE_FORMAT,
        allowed_values=list(FILE_FORMATS),
        description="BEX: CSV, PSV or TSV.",
    ),
    th.Property(
        "job_frequency_hours",
        th.IntegerType(allowed_values=list(FREQUENCIES)),
        default=DEFAULT_FREQUENCY_HOURS,
        description="BEX: hours between file rotations (1, 2, 3, 4, 6, 8, 12 or 24).",
    ),
    th.Property(
        "sftp_host",
        th.StringType,
        description="SFTP host; default transfer-campaign-<pod>.goacoustic.com.",
    ),
    th.Property("sftp_port", th.IntegerType, default=DEFAULT_SFTP_PORT, description="SFTP port."),
    th.Property(
        "sftp_username",
        th.StringType,
        default=DEFAULT_SFTP_USERNAME,
        description="SFTP user; 'oauth' logs in with the current access token.",
    ),
    th.Property(
        "sftp_password",
        th.StringType,
        secret=True,
        description="SFTP password, when sftp_username is not 'oauth'.",
    ),
    th.Property(
        "sftp_folder",
        th.StringType,
        default=DEFAULT_SFTP_FOLDER,
        description="Folder of the exports.",
    ),
    *host_key_properties(),
    th.Property(
        "file_settle_seconds",
        th.NumberType,
        default=DEFAULT_SETTLE_SECONDS,
        description="BEX: a file is read only if its size and time do not change over this long "
        "(a file still being written is left for the next run).",
    ),
    th.Property(
        "marker_history_days",
        th.IntegerType,
        default=DEFAULT_MARKER_HISTORY_DAYS,
        description="BEX: how far back (by the time in the file name) files that arrive late "
        "are still noticed.",
    ),
    th.Property(
        "on_bad_row",
        th.StringType,
        default=BAD_ROW_CHOICES[0],
        allowed_values=list(BAD_ROW_CHOICES),
        description="A malformed row fails the sync naming file and line (fail), or is logged, "
        "counted and skipped (skip).",
    ),
    *WINDOW.window_properties(
        window=f"{RRDE}Days of activity per export job.",
        lookback=f"{RRDE}Days before the bookmark exported again on each run.",
        timezone="IANA zone of times written without a zone (RRDE Event Timestamp).",
    ),
    *JobSettings.job_properties(scope=RRDE),
)


def _limit_custom_columns(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON schema cannot be told maxItems through the SDK's helpers; add it here."""
    schema["properties"]["custom_columns"]["maxItems"] = MAX_CUSTOM_COLUMNS
    return schema


CONFIG_SCHEMA_DICT = _limit_custom_columns(CONFIG_SCHEMA.to_dict())


@dataclass(frozen=True, kw_only=True)
class AcousticSettings(JobSettings, WindowSettings):
    """The vendor's settings, validated and typed (the shared ones inherited)."""

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

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> AcousticSettings:
        """Fill defaults from the pod, and check every setting with a message naming it."""
        read = SettingsReader(raw, vendor="Acoustic", prefix="acoustic.")
        pod = read.text("pod", DEFAULT_POD).upper()
        suffix = PODS.get(pod)
        if suffix is None and not (read.present("api_host") and read.present("sftp_host")):
            raise read.bad(
                "pod",
                f"{pod!r} is unknown",
                "set acoustic.pod (1-9, A, B) or acoustic.api_host and acoustic.sftp_host",
            )
        mode = read.choice("export_mode", DEFAULT_MODE, EXPORT_MODES)
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
        username = read.text("sftp_username", DEFAULT_SFTP_USERNAME, required=True)
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
        frequency = read.integer("job_frequency_hours", DEFAULT_FREQUENCY_HOURS, 1, 24)
        if frequency not in FREQUENCIES:
            raise read.bad(
                "job_frequency_hours",
                f"is {frequency}",
                f"set acoustic.job_frequency_hours to one of {', '.join(map(str, FREQUENCIES))}",
            )
        check_host_key, known_hosts = read_host_key(read, sftp=True)
        jobs = cls.read_jobs(read)
        return cls(
            **values_of(jobs),
            **values_of(WINDOW.read_window(read, max_window_days=None)),
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
                "file_format",
                DEFAULT_FILE_FORMAT,
                (*FILE_FORMATS, *(f.lower() for f in FILE_FORMATS)),
            ).upper(),
            job_frequency_hours=frequency,
            sftp_host=read.host("sftp_host", f"transfer-campaign-{suffix}.goacoustic.com"),
            sftp_port=read.port("sftp_port", DEFAULT_SFTP_PORT) or DEFAULT_SFTP_PORT,
            sftp_username=username,
            sftp_password=password,
            sftp_folder=read.text("sftp_folder", DEFAULT_SFTP_FOLDER, required=True),
            sftp_known_hosts_file=known_hosts,
            sftp_host_key_check=check_host_key,
            file_settle_seconds=read.seconds(
                "file_settle_seconds", DEFAULT_SETTLE_SECONDS, zero=True
            ),
            marker_history_days=read.integer("marker_history_days", DEFAULT_MARKER_HISTORY_DAYS, 0),
            on_bad_row=cast(
                Literal["fail", "skip"],
                read.choice("on_bad_row", BAD_ROW_CHOICES[0], BAD_ROW_CHOICES),
            ),
        )
