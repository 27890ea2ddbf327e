"""Settings every vendor shares, declared once: their names, JSON schema, defaults and checks.

Each vendor composes its settings schema from these pieces plus its own, so a default is written in
one place (a dataclass field here, or a vendor's `WindowSettings` constant) and both the schema
shown by `--about` and the value the code reads come from it. A vendor's settings dataclass
inherits `JobSettings` (and `WindowSettings` where it exports date windows), so the code keeps
reading flat names such as `settings.max_attempts` or `settings.max_jobs_in_flight`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from singer_sdk import typing as th

from tap_emailtracking.checks import SettingsReader
from tap_emailtracking.jobs import PollPolicy
from tap_emailtracking.transports.http import HttpPolicy

MAX_JOBS_IN_FLIGHT = 50
HOST_KEY_CHECK_DEFAULT = True


def values_of(settings: object) -> dict[str, Any]:
    """A settings dataclass as keyword arguments (shallow: nested objects are kept as they are)."""
    return {item.name: getattr(settings, item.name) for item in fields(settings)}  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class JobSettings:
    """How patiently a vendor's export jobs and calls are run; these defaults are the only ones."""

    poll_interval_seconds: float = 15
    poll_max_interval_seconds: float = 120
    job_deadline_seconds: float = 21600
    request_timeout_seconds: float = 300
    max_attempts: int = 6
    max_jobs_in_flight: int = 4

    @classmethod
    def job_properties(cls, *, job: str = "job", scope: str = "") -> list[th.Property[Any]]:
        """The schema of these settings; `job` names the vendor's job, `scope` where they apply."""
        return [
            th.Property(
                "poll_interval_seconds",
                th.NumberType,
                default=cls.poll_interval_seconds,
                description=f"{scope}First wait between {job} status checks; grows by half "
                "each poll.",
            ),
            th.Property(
                "poll_max_interval_seconds",
                th.NumberType,
                default=cls.poll_max_interval_seconds,
                description=f"{scope}Longest wait between {job} status checks.",
            ),
            th.Property(
                "job_deadline_seconds",
                th.NumberType,
                default=cls.job_deadline_seconds,
                description=f"{scope}How long one run waits for a {job} before failing (the "
                f"{job} id is kept in state and polled again by the next run).",
            ),
            th.Property(
                "max_jobs_in_flight",
                th.IntegerType,
                default=cls.max_jobs_in_flight,
                description=f"{scope}Export jobs of this vendor queued or running at once (1 to "
                f"{MAX_JOBS_IN_FLIGHT}). A sync submits the jobs of its windows ahead, up to this "
                "many, and the next as soon as one is done; a vendor that refuses more (its own "
                "limit) is asked again when one finishes.",
            ),
            th.Property(
                "request_timeout_seconds",
                th.NumberType,
                default=cls.request_timeout_seconds,
                description="Read timeout of one API call or file-site operation.",
            ),
            th.Property(
                "max_attempts",
                th.IntegerType,
                default=cls.max_attempts,
                description="Attempts per API call or download before giving up on transient "
                "errors.",
            ),
        ]

    @classmethod
    def read_jobs(cls, read: SettingsReader) -> JobSettings:
        """The checked values (a poll ceiling below the first wait is refused)."""
        poll = read.seconds("poll_interval_seconds", cls.poll_interval_seconds)
        poll_max = read.seconds("poll_max_interval_seconds", cls.poll_max_interval_seconds)
        if poll_max < poll:
            raise read.bad(
                "poll_max_interval_seconds",
                f"({poll_max:g}) is below poll_interval_seconds ({poll:g})",
                f"set {read.prefix}poll_max_interval_seconds to poll_interval_seconds or more",
            )
        return JobSettings(
            poll_interval_seconds=poll,
            poll_max_interval_seconds=poll_max,
            job_deadline_seconds=read.seconds("job_deadline_seconds", cls.job_deadline_seconds),
            request_timeout_seconds=read.seconds(
                "request_timeout_seconds", cls.request_timeout_seconds
            ),
            max_attempts=read.integer("max_attempts", cls.max_attempts, 1),
            max_jobs_in_flight=read.integer(
                "max_jobs_in_flight", cls.max_jobs_in_flight, 1, MAX_JOBS_IN_FLIGHT
            ),
        )

    def poll_policy(self) -> PollPolicy:
        """How the shared job runner waits for this vendor's jobs."""
        return PollPolicy(
            interval_seconds=self.poll_interval_seconds,
            max_interval_seconds=self.poll_max_interval_seconds,
            deadline_seconds=self.job_deadline_seconds,
        )

    def http_policy(self) -> HttpPolicy:
        """Retries and read timeout of this vendor's HTTP calls."""
        return HttpPolicy(
            max_attempts=self.max_attempts, read_timeout_seconds=self.request_timeout_seconds
        )


@dataclass(frozen=True, kw_only=True)
class WindowSettings:
    """Date windows of activity: each vendor keeps one instance as its defaults."""

    window_days: int
    lookback_days: int
    timezone: str

    def window_properties(
        self, *, window: str, lookback: str, timezone: str
    ) -> list[th.Property[Any]]:
        """The schema of these settings with these defaults; the vendor words each description."""
        return [
            th.Property(
                "window_days", th.IntegerType, default=self.window_days, description=window
            ),
            th.Property(
                "lookback_days", th.IntegerType, default=self.lookback_days, description=lookback
            ),
            th.Property("timezone", th.StringType, default=self.timezone, description=timezone),
        ]

    def read_window(self, read: SettingsReader, *, max_window_days: int | None) -> WindowSettings:
        """The checked values, these being the defaults."""
        return WindowSettings(
            window_days=read.integer("window_days", self.window_days, 1, max_window_days),
            lookback_days=read.integer("lookback_days", self.lookback_days, 0),
            timezone=read.timezone("timezone", self.timezone),
        )


def host_key_properties() -> list[th.Property[Any]]:
    """How an SFTP server's key is checked."""
    return [
        th.Property(
            "sftp_known_hosts_file",
            th.StringType,
            description="SFTP: known_hosts file used to check the server key "
            "(default ~/.ssh/known_hosts).",
        ),
        th.Property(
            "sftp_host_key_check",
            th.BooleanType,
            default=HOST_KEY_CHECK_DEFAULT,
            description="SFTP: refuse servers whose key is not in known_hosts. Setting false "
            "accepts any key (only for a local sandbox).",
        ),
    ]


def read_host_key(read: SettingsReader, *, sftp: bool) -> tuple[bool, str | None]:
    """Whether to check the key, and the known_hosts file (which must exist when it is used)."""
    check = read.boolean("sftp_host_key_check", HOST_KEY_CHECK_DEFAULT)
    if sftp and check:
        return check, read.existing_file("sftp_known_hosts_file")
    return check, read.optional_text("sftp_known_hosts_file")
