"""The whole local vendor sandbox: every vendor's API plus the file sites, on 127.0.0.1.

Tests start one on free ports; the newcomer's demo (`python -m vendor_sandbox serve`) starts one on
fixed ports so meltano.yml can point at it. The sandbox knows the ground truth of everything it
serves, so a sync can be checked record for record.

Vendors: ExactTarget (XML API at `/exacttarget/integrate.aspx`, result files in the file sites'
root) and Acoustic Campaign (OAuth, BEX REST and XML API under `/acoustic/`, files in the SFTP
folder `/download`, SFTP login also as `oauth` + access token). `tap_config()` includes a vendor's
settings only when `vendors` names it (default: ExactTarget only).

Pinpointe (JSON API at `/pinpointe/apijson.php`, result links under `/pinpointe/results/`,
served over HTTP with Range) is on by default like Acoustic; `pinpointe=None` leaves it out.

impact.com (REST API under `/impact/`, signed result URLs under `/impact-files/`) is on by
default too; `impact=None` leaves it out. Its default account is small enough that one sync fits
a day's ClickExport quota (2 programs x 4 days = 8 of 10 jobs); the api's clock moves by days
(`impact_api.advance_days()`) for backfills that take several.

Export jobs (ExactTarget batches, Acoustic Raw Recipient Data Exports, Pinpointe async jobs)
finish after a few status polls unless `exacttarget_jobs` / `acoustic_jobs` / `pinpointe_jobs`
give durations in seconds; every vendor reads one clock, so their submission logs can be
compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from typing_extensions import Self, override

from vendor_sandbox.acoustic.api import AcousticApi
from vendor_sandbox.acoustic.data import (
    DEFAULT_EXPORT_FILE_NAME,
    EVENT_TYPES,
    MAILING_TYPES,
    AcousticDataset,
    AcousticDataSpec,
)
from vendor_sandbox.exacttarget.api import ExactTargetApi
from vendor_sandbox.exacttarget.data import KINDS as EXACTTARGET_KINDS
from vendor_sandbox.exacttarget.data import ExactTargetDataset, ExactTargetDataSpec
from vendor_sandbox.impact.api import FILES_PREFIX as IMPACT_FILES_PREFIX
from vendor_sandbox.impact.api import ImpactApi
from vendor_sandbox.impact.data import ImpactDataset, ImpactDataSpec
from vendor_sandbox.jobs import JobSettings
from vendor_sandbox.mailkit.api import MailkitApi
from vendor_sandbox.mailkit.data import MailkitDataset, MailkitDataSpec
from vendor_sandbox.mailkit.server import tap_settings as mailkit_tap_settings
from vendor_sandbox.pinpointe.api import PinpointeApi
from vendor_sandbox.pinpointe.data import PinpointeDataset, PinpointeDataSpec
from vendor_sandbox.servers.base import Lifecycle
from vendor_sandbox.servers.faults import DownloadFaults
from vendor_sandbox.servers.ftp import FtpServer
from vendor_sandbox.servers.http import HttpServer
from vendor_sandbox.servers.sftp import SftpServer

EXACTTARGET_PATH = "/exacttarget/integrate.aspx"
ACOUSTIC_PREFIX = "/acoustic"
PINPOINTE_PREFIX = "/pinpointe"
MAILKIT_PREFIX = "/mailkit"
IMPACT_PREFIX = "/impact"
VENDORS = ("exacttarget", "acoustic", "pinpointe", "mailkit", "impact")


@dataclass(frozen=True)
class SandboxPorts:
    """Fixed ports for the demo (0 = any free port, as tests use)."""

    http: int = 0
    ftp: int = 0
    ftps: int = 0
    sftp: int = 0


DEMO_PORTS = SandboxPorts(http=18080, ftp=18021, ftps=18990, sftp=18022)


@dataclass(frozen=True)
class SandboxCredentials:
    """What the sandbox accepts. Tests pass their own to search output for them."""

    et_username: str = "sandbox-et-user"
    et_password: str = "sandbox-et-pass-7d1c"
    file_username: str = "sandbox-files"
    file_password: str = "sandbox-files-pass-42ab"
    acoustic_client_id: str = "sandbox-acoustic-client"
    acoustic_client_secret: str = "sandbox-acoustic-secret-5e2f"
    acoustic_refresh_token: str = "sandbox-acoustic-refresh-91ac"
    acoustic_ftp_user: str = "admin@example.com"  # the org admin: ftpUserId and SFTP login
    acoustic_ftp_password: str = "sandbox-acoustic-ftp-pass-3b7d"
    pinpointe_username: str = "sandbox-pinpointe@example.com"
    pinpointe_usertoken: str = "sandbox-pinpointe-token-8c3f1e"
    mailkit_client_id: str = "418911"
    mailkit_client_md5: str = "sandbox-mailkit-md5-6d0a91c2"
    impact_account_sid: str = "IRsandbox7Qm2xK9vB4nT8wLp3dF6hJ1aZ"  # 34 characters, "IR" first
    impact_auth_token: str = "sandbox-impact-token-5b9e2c7d"


@dataclass(frozen=True)
class AcousticBexSetup:
    """The BEX job definition the sandbox's org already has when it starts.

    Pass `acoustic_bex=None` to `Sandbox` for an org without one (the tap must create it:
    `manage_job_definition`). Event and mailing types are listed in full, as the tap sends them.
    """

    file_format: str = "CSV"
    job_frequency_hours: int = 4
    export_file_name: str = DEFAULT_EXPORT_FILE_NAME
    event_types: tuple[str, ...] = EVENT_TYPES
    mailing_types: tuple[str, ...] = MAILING_TYPES
    custom_columns: tuple[str, ...] | None = None  # None: every column of the database


DEFAULT_ACOUSTIC_SPEC = AcousticDataSpec()
DEFAULT_ACOUSTIC_BEX = AcousticBexSetup()
DEFAULT_PINPOINTE_SPEC = PinpointeDataSpec()
# Sends up to 2024-01-21, the last day the other vendors' demo data covers.
DEFAULT_MAILKIT_SPEC = MailkitDataSpec(end=date(2024, 1, 22))
DEFAULT_IMPACT_SPEC = ImpactDataSpec()


class _Router:
    """Send each request to the vendor app that owns its path."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, Callable[..., Iterable[bytes]]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        for prefix, app in self.routes:
            if path.startswith(prefix):
                return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such sandbox endpoint"]


class Sandbox(Lifecycle):
    """Start and stop every sandbox server; hand out tap configs and ground truth."""

    SEND_LOOKBACK_DAYS = 14
    # The account zone the generated local times are meant in (the vendor's default).
    ET_TIMEZONE = "America/Chicago"

    def __init__(
        self,
        root: Path,
        *,
        exacttarget: ExactTargetDataSpec | None = None,
        credentials: SandboxCredentials | None = None,
        ports: SandboxPorts | None = None,
        inquiries_until_complete: int = 2,
        acoustic: AcousticDataSpec | None = DEFAULT_ACOUSTIC_SPEC,
        acoustic_bex: AcousticBexSetup | None = DEFAULT_ACOUSTIC_BEX,
        acoustic_files_until: datetime | None = None,
        rrde_polls_until_complete: int = 3,
        exacttarget_jobs: JobSettings | None = None,
        acoustic_jobs: JobSettings | None = None,
        pinpointe: PinpointeDataSpec | None = DEFAULT_PINPOINTE_SPEC,
        pinpointe_jobs: JobSettings | None = None,
        pinpointe_polls_until_complete: int = 3,
        mailkit: MailkitDataSpec | None = DEFAULT_MAILKIT_SPEC,
        impact: ImpactDataSpec | None = DEFAULT_IMPACT_SPEC,
        impact_jobs: JobSettings | None = None,
        impact_polls_until_complete: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build every server (nothing listens before `start`).

        Acoustic (unless `acoustic` is None): with `acoustic_bex` the org has that BEX definition
        and its files up to `acoustic_files_until` (default: the end of the data) are in
        `/download` at once; creating or updating a definition through the API rotates up to
        the same time. `exacttarget_jobs` / `acoustic_jobs` / `pinpointe_jobs`: job durations
        and limits (default: done after `inquiries_until_complete` / `rrde_polls_until_complete`
        / `pinpointe_polls_until_complete` status reports, no limit). Pinpointe (unless
        `pinpointe` is None) writes its result files under `root / "pinpointe-results"`.
        Mailkit (unless `mailkit` is None) answers its raw functions from the seeded rows.
        impact.com (unless `impact` is None) writes its results under `root / "impact-results"`;
        `impact_jobs` / `impact_polls_until_complete` as for Pinpointe.
        """
        self.root = root
        self.files_root = root / "files"
        self.files_root.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials or SandboxCredentials()
        ports = ports or SandboxPorts()
        creds = self.credentials
        self.download_faults = DownloadFaults()
        self.et_spec = exacttarget or ExactTargetDataSpec()
        self.et_dataset = ExactTargetDataset(self.et_spec)
        self.et_api = ExactTargetApi(
            self.et_dataset,
            self.files_root,
            username=creds.et_username,
            password=creds.et_password,
            inquiries_until_complete=inquiries_until_complete,
            jobs=exacttarget_jobs,
            clock=clock,
        )
        router = _Router()
        router.routes.append(("/exacttarget/", self.et_api))
        self.acoustic_spec = acoustic
        self.acoustic_bex = acoustic_bex
        self.acoustic_dataset: AcousticDataset | None = None
        self.acoustic_api: AcousticApi | None = None
        if acoustic is not None:
            self.acoustic_dataset = AcousticDataset(acoustic)
            until = acoustic_files_until or self.acoustic_dataset.data_end
            self.acoustic_api = AcousticApi(
                self.acoustic_dataset,
                self.files_root,
                client_id=creds.acoustic_client_id,
                client_secret=creds.acoustic_client_secret,
                refresh_token=creds.acoustic_refresh_token,
                ftp_user_id=creds.acoustic_ftp_user,
                ftp_password=creds.acoustic_ftp_password,
                prefix=ACOUSTIC_PREFIX,
                polls_until_complete=rrde_polls_until_complete,
                auto_rotate_until=until,
                jobs=acoustic_jobs,
                clock=clock,
            )
            if acoustic_bex is not None:
                self.acoustic_api.create_definition(self._acoustic_definition(acoustic_bex))
            router.routes.append((ACOUSTIC_PREFIX + "/", self.acoustic_api))
        self.pinpointe_spec = pinpointe
        self.pinpointe_dataset: PinpointeDataset | None = None
        self.pinpointe_api: PinpointeApi | None = None
        if pinpointe is not None:
            self.pinpointe_dataset = PinpointeDataset(pinpointe)
            self.pinpointe_api = PinpointeApi(
                self.pinpointe_dataset,
                root / "pinpointe-results",
                username=creds.pinpointe_username,
                usertoken=creds.pinpointe_usertoken,
                prefix=PINPOINTE_PREFIX,
                polls_until_complete=pinpointe_polls_until_complete,
                jobs=pinpointe_jobs,
                clock=clock,
            )
            router.routes.append((PINPOINTE_PREFIX + "/", self.pinpointe_api))
        self.mailkit_dataset: MailkitDataset | None = None
        self.mailkit_api: MailkitApi | None = None
        if mailkit is not None:
            self.mailkit_dataset = MailkitDataset(mailkit)
            self.mailkit_api = MailkitApi(
                self.mailkit_dataset,
                client_id=creds.mailkit_client_id,
                client_md5=creds.mailkit_client_md5,
                prefix=MAILKIT_PREFIX,
                clock=clock,
            )
            router.routes.append((MAILKIT_PREFIX + "/", self.mailkit_api))
        self.impact_spec = impact
        self.impact_dataset: ImpactDataset | None = None
        self.impact_api: ImpactApi | None = None
        if impact is not None:
            self.impact_dataset = ImpactDataset(impact)
            self.impact_api = ImpactApi(
                self.impact_dataset,
                root / "impact-results",
                account_sid=creds.impact_account_sid,
                auth_token=creds.impact_auth_token,
                prefix=IMPACT_PREFIX,
                polls_until_complete=impact_polls_until_complete,
                jobs=impact_jobs,
                clock=clock,
            )
            router.routes.append((IMPACT_PREFIX + "/", self.impact_api))
            router.routes.append((IMPACT_FILES_PREFIX + "/", self.impact_api))
        self.http = HttpServer(router, port=ports.http)
        self.sftp = SftpServer(
            self.files_root,
            creds.file_username,
            creds.file_password,
            faults=self.download_faults,
            port=ports.sftp,
            password_check=self.acoustic_api.sftp_password_check if self.acoustic_api else None,
            on_access=self.acoustic_api.sftp_access if self.acoustic_api else None,
        )
        self.ftp = FtpServer(
            self.files_root,
            creds.file_username,
            creds.file_password,
            faults=self.download_faults,
            port=ports.ftp,
        )
        self.ftps = FtpServer(
            self.files_root,
            creds.file_username,
            creds.file_password,
            tls=True,
            cert_dir=root,
            faults=self.download_faults,
            port=ports.ftps,
        )
        self.known_hosts = root / "known_hosts"

    @override
    def start(self) -> Self:
        """Start every server (HTTP, SFTP, FTP, FTPS); if one fails, stop those started."""
        try:
            for server in (self.http, self.sftp, self.ftp, self.ftps):
                server.start()
        except BaseException:
            self.stop()
            raise
        self.sftp.write_known_hosts(self.known_hosts)
        return self

    @override
    def stop(self) -> None:
        """Stop every server, closing client connections."""
        for server in (self.ftps, self.ftp, self.sftp, self.http):
            server.stop()

    # -- configs and truth ----------------------------------------------------------------------

    def exacttarget_config(self, protocol: str = "sftp", **overrides: Any) -> dict[str, Any]:
        """The tap's `exacttarget` settings for this sandbox, fast polling for tests."""
        creds = self.credentials
        port = {"sftp": self.sftp.port, "ftp": self.ftp.port, "ftps": self.ftps.port}[protocol]
        config: dict[str, Any] = {
            "username": creds.et_username,
            "password": creds.et_password,
            "endpoint": self.http.url + EXACTTARGET_PATH,
            "file_protocol": protocol,
            "file_host": "127.0.0.1",
            "file_port": port,
            "file_username": creds.file_username,
            "file_password": creds.file_password,
            "file_folder": "/",
            "sftp_known_hosts_file": str(self.known_hosts),
            "send_lookback_days": self.SEND_LOOKBACK_DAYS,
            "lookback_days": 1,
            "timezone": self.ET_TIMEZONE,
            "poll_interval_seconds": 0.01,
            "poll_max_interval_seconds": 0.05,
            "job_deadline_seconds": 30,
            "request_timeout_seconds": 10,
            "max_attempts": 3,
        }
        if self.ftps.ca_file is not None:
            config["file_tls_ca_file"] = str(self.ftps.ca_file)
        config.update(overrides)
        return config

    def tap_config(
        self,
        protocol: str = "sftp",
        *,
        vendors: Iterable[str] = ("exacttarget",),
        acoustic_mode: str = "bex",
        acoustic_overrides: dict[str, Any] | None = None,
        pinpointe_overrides: dict[str, Any] | None = None,
        mailkit_overrides: dict[str, Any] | None = None,
        impact_overrides: dict[str, Any] | None = None,
        **exacttarget: Any,
    ) -> dict[str, Any]:
        """A complete tap config covering the whole data range of the `vendors` it includes.

        `protocol` and `**exacttarget` shape the ExactTarget settings; `acoustic_mode` and
        `acoustic_overrides` the Acoustic ones (see `acoustic_config`); `pinpointe_overrides`
        the Pinpointe ones (see `pinpointe_config`); `mailkit_overrides` the Mailkit ones;
        `impact_overrides` the impact.com ones (see `impact_config`).
        """
        chosen = self._vendors(vendors)
        starts, ends = [], []
        config: dict[str, Any] = {}
        if "exacttarget" in chosen:
            starts.append(self.et_spec.start)
            ends.append(self.et_spec.end)
            config["exacttarget"] = self.exacttarget_config(protocol, **exacttarget)
        if "acoustic" in chosen:
            spec = self._acoustic_parts()[0].spec
            starts.append(spec.start)
            ends.append(spec.end)
            config["acoustic"] = self.acoustic_config(acoustic_mode, **(acoustic_overrides or {}))
        if "pinpointe" in chosen:
            pinpointe = self._pinpointe_parts()[0].spec
            starts.append(pinpointe.start)
            ends.append(pinpointe.end)
            config["pinpointe"] = self.pinpointe_config(**(pinpointe_overrides or {}))
        if "mailkit" in chosen:
            mailkit = self._mailkit_parts()[0].spec
            starts.append(mailkit.start)
            ends.append(mailkit.end - timedelta(days=1))  # the spec's end is exclusive
            config["mailkit"] = self.mailkit_config(**(mailkit_overrides or {}))
        if "impact" in chosen:
            impact = self._impact_parts()[0].spec
            starts.append(impact.start)
            ends.append(impact.end - timedelta(days=1))  # the spec's end is exclusive
            config["impact"] = self.impact_config(**(impact_overrides or {}))
        return {
            "start_date": min(starts).isoformat(),
            "end_date": max(ends).isoformat(),
            **config,
        }

    def exacttarget_ranges(self) -> dict[str, Any]:
        """The activity and send ranges a full sync of the sandbox covers."""
        spec = self.et_spec
        return {
            "activity": (spec.start, spec.end),
            "sends": (spec.start - timedelta(days=self.SEND_LOOKBACK_DAYS), spec.end),
        }

    def exacttarget_truth(self) -> dict[str, list[dict[str, Any]]]:
        """Every record a full sync must deliver, in the sandbox's raw vocabulary."""
        return self.et_dataset.truth(**self.exacttarget_ranges())

    def ground_truth_counts(
        self, vendors: Iterable[str] = ("exacttarget",), *, acoustic_mode: str = "bex"
    ) -> dict[str, int]:
        """Rows per tap stream a full sync (of `tap_config(vendors=..., acoustic_mode=...)`) must
        deliver; Acoustic in BEX mode counts the rows of the files in `/download` now."""
        chosen = self._vendors(vendors)
        out: dict[str, int] = {}
        if "exacttarget" in chosen:
            counts = self.et_dataset.counts(**self.exacttarget_ranges())
            out.update({f"exacttarget_{kind}": counts[kind] for kind in EXACTTARGET_KINDS})
        if "acoustic" in chosen:
            out["acoustic_email_events"] = len(self.acoustic_truth(acoustic_mode))
        if "pinpointe" in chosen:
            out.update(self._pinpointe_parts()[0].counts())
        if "mailkit" in chosen:
            out.update(self._mailkit_parts()[0].counts())
        if "impact" in chosen:
            out.update(self._impact_parts()[0].counts())
        return out

    # -- Acoustic -------------------------------------------------------------------------------

    def _vendors(self, vendors: Iterable[str]) -> tuple[str, ...]:
        chosen = tuple(vendors)
        unknown = set(chosen) - set(VENDORS)
        if unknown:
            raise ValueError(f"unknown vendors {sorted(unknown)}; known: {', '.join(VENDORS)}")
        if "acoustic" in chosen and self.acoustic_api is None:
            raise ValueError("this sandbox was built with acoustic=None")
        if "pinpointe" in chosen and self.pinpointe_api is None:
            raise ValueError("this sandbox was built with pinpointe=None")
        if "mailkit" in chosen and self.mailkit_api is None:
            raise ValueError("this sandbox was built with mailkit=None")
        if "impact" in chosen and self.impact_api is None:
            raise ValueError("this sandbox was built with impact=None")
        return chosen

    def _acoustic_parts(self) -> tuple[AcousticDataset, AcousticApi]:
        if self.acoustic_dataset is None or self.acoustic_api is None:
            raise ValueError("this sandbox was built with acoustic=None")
        return self.acoustic_dataset, self.acoustic_api

    def _acoustic_setup(self) -> AcousticBexSetup:
        return self.acoustic_bex or AcousticBexSetup()

    def _acoustic_columns(self, setup: AcousticBexSetup) -> tuple[str, ...]:
        dataset = self._acoustic_parts()[0]
        if setup.custom_columns is None:
            return dataset.spec.custom_columns
        return setup.custom_columns

    def _acoustic_definition(self, setup: AcousticBexSetup) -> dict[str, Any]:
        """The BEX job definition body (as POSTed) of a setup."""
        columns = self._acoustic_columns(setup)
        return {
            "contactSourceId": self._acoustic_parts()[0].spec.contact_source_id,
            "ftpUserId": self.credentials.acoustic_ftp_user,
            "channels": [
                {
                    "type": "Email",
                    "jobFrequency": setup.job_frequency_hours,
                    "exportFileName": setup.export_file_name,
                    "exportFileFormat": setup.file_format,
                    "eventTypes": [{"eventType": t} for t in setup.event_types],
                    "mailingTypes": [{"mailingType": m} for m in setup.mailing_types],
                    "columnNames": [
                        {"columnName": c, "columnOrder": i} for i, c in enumerate(columns)
                    ],
                }
            ],
        }

    def acoustic_config(
        self,
        mode: str = "bex",
        fmt: str | None = None,
        *,
        sftp_login: str = "oauth",
        **overrides: Any,
    ) -> dict[str, Any]:
        """The tap's `acoustic` settings for this sandbox, fast polling for tests.

        `mode`: "bex" or "raw_recipient_data"; `fmt`: the BEX file format (default: the
        definition's); `sftp_login`: "oauth" (the access token is the password) or "password"
        (the org admin's login and password). The BEX settings match the sandbox's definition,
        so the tap finds it as it is; `manage_job_definition` is on only when the sandbox has
        no definition (`acoustic_bex=None`).
        """
        if mode not in ("bex", "raw_recipient_data"):
            raise ValueError("mode must be bex or raw_recipient_data")
        if sftp_login not in ("oauth", "password"):
            raise ValueError("sftp_login must be oauth or password")
        dataset, _ = self._acoustic_parts()
        creds = self.credentials
        setup = self._acoustic_setup()
        config: dict[str, Any] = {
            "api_host": self.http.url + ACOUSTIC_PREFIX,
            "client_id": creds.acoustic_client_id,
            "client_secret": creds.acoustic_client_secret,
            "refresh_token": creds.acoustic_refresh_token,
            "export_mode": mode,
            "contact_source_id": dataset.spec.contact_source_id,
            "ftp_user_id": creds.acoustic_ftp_user,
            "manage_job_definition": self.acoustic_bex is None,
            "event_types": list(setup.event_types),
            "mailing_types": list(setup.mailing_types),
            "custom_columns": list(self._acoustic_columns(setup)),
            "export_file_name": setup.export_file_name,
            "file_format": (fmt or setup.file_format).upper(),
            "job_frequency_hours": setup.job_frequency_hours,
            "sftp_host": "127.0.0.1",
            "sftp_port": self.sftp.port,
            "sftp_username": "oauth" if sftp_login == "oauth" else creds.acoustic_ftp_user,
            "sftp_folder": "/download",
            "sftp_known_hosts_file": str(self.known_hosts),
            "timezone": dataset.spec.timezone,
            "file_settle_seconds": 0.2,
            "poll_interval_seconds": 0.01,
            "poll_max_interval_seconds": 0.05,
            "job_deadline_seconds": 30,
            "request_timeout_seconds": 10,
            "max_attempts": 3,
        }
        if sftp_login == "password":
            config["sftp_password"] = creds.acoustic_ftp_password
        config.update(overrides)
        return config

    def acoustic_truth(
        self,
        mode: str = "bex",
        *,
        event_types: Iterable[str] | None = None,
        custom_columns: Iterable[str] | None = None,
    ) -> list[dict[str, str]]:
        """Every row a full sync must deliver, in the vendor's vocabulary (header-keyed).

        bex: the rows of every complete BEX file now in `/download`, files in name-time order
        (the files' own settings apply; `event_types` filters rows like the tap's setting).
        raw_recipient_data: the Raw Recipient Data rows of the data's whole days (spec.start to
        spec.end in the org zone), with the config's event types and custom columns unless given.
        """
        dataset, api = self._acoustic_parts()
        wanted = set(event_types) if event_types is not None else None
        if mode == "bex":
            rows = [row for file_rows in api.bex_truth().values() for row in file_rows]
            if wanted is not None:
                rows = [row for row in rows if row["code"] in wanted]
            return rows
        if mode != "raw_recipient_data":
            raise ValueError("mode must be bex or raw_recipient_data")
        return dataset.rrde_truth(
            dataset.spec.start, dataset.spec.end, **self._rrde_options(wanted, custom_columns)
        )

    def acoustic_rrde_rows(self) -> Iterator[list[str]]:
        """The Raw Recipient Data rows of `acoustic_truth("raw_recipient_data")`, as a stream."""
        dataset, _ = self._acoustic_parts()
        return dataset.rrde_rows(dataset.spec.start, dataset.spec.end, **self._rrde_options())

    def _rrde_options(
        self,
        event_types: Iterable[str] | None = None,
        custom_columns: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """RRDE event types and custom columns: the ones given, else the config's."""
        setup = self._acoustic_setup()
        return {
            "event_types": tuple(event_types) if event_types is not None else setup.event_types,
            "custom_columns": (
                tuple(custom_columns)
                if custom_columns is not None
                else self._acoustic_columns(setup)
            ),
        }

    def acoustic_truth_by_file(self) -> dict[str, list[dict[str, str]]]:
        """BEX rows per complete file now in `/download` (file name -> rows in file order)."""
        return self._acoustic_parts()[1].bex_truth()

    # -- Pinpointe ------------------------------------------------------------------------------

    def _pinpointe_parts(self) -> tuple[PinpointeDataset, PinpointeApi]:
        if self.pinpointe_dataset is None or self.pinpointe_api is None:
            raise ValueError("this sandbox was built with pinpointe=None")
        return self.pinpointe_dataset, self.pinpointe_api

    def pinpointe_config(self, **overrides: Any) -> dict[str, Any]:
        """The tap's `pinpointe` settings for this sandbox, fast polling for tests."""
        self._pinpointe_parts()
        creds = self.credentials
        config: dict[str, Any] = {
            "host": self.http.url + PINPOINTE_PREFIX,
            "username": creds.pinpointe_username,
            "usertoken": creds.pinpointe_usertoken,
            "notify_type": "email",
            "notify_value": "exports@example.com",
            "poll_interval_seconds": 0.01,
            "poll_max_interval_seconds": 0.05,
            "job_deadline_seconds": 30,
            "request_timeout_seconds": 10,
            "max_attempts": 3,
        }
        config.update(overrides)
        return config

    def pinpointe_truth(
        self, start: date | None = None, end: date | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Raw records per tap stream (`pinpointe_lists` ... `pinpointe_newsletter_activity`)
        a sync of `[start, end)` must deliver; default: the config's range (the data's)."""
        return self._pinpointe_parts()[0].truth(start, end)

    def pinpointe_counts(
        self, start: date | None = None, end: date | None = None
    ) -> dict[str, int]:
        """`len` of each `pinpointe_truth` list, without building the records."""
        return self._pinpointe_parts()[0].counts(start, end)

    # -- Mailkit --------------------------------------------------------------------------------

    def _mailkit_parts(self) -> tuple[MailkitDataset, MailkitApi]:
        if self.mailkit_dataset is None or self.mailkit_api is None:
            raise ValueError("this sandbox was built with mailkit=None")
        return self.mailkit_dataset, self.mailkit_api

    def mailkit_config(self, **overrides: Any) -> dict[str, Any]:
        """The tap's `mailkit` settings for this sandbox: no pause between calls, for tests."""
        api = self._mailkit_parts()[1]
        return mailkit_tap_settings(self.http.url + api.endpoint_path, api, **overrides)

    def mailkit_truth(self, **filters: Any) -> dict[str, list[dict[str, Any]]]:
        """Raw rows per tap stream (`MailkitDataset.truth`; filters: campaign_ids, send_ids,
        grown)."""
        return self._mailkit_parts()[0].truth(**filters)

    def mailkit_counts(self, **filters: Any) -> dict[str, int]:
        """`len` of each `mailkit_truth` list, without building the rows."""
        return self._mailkit_parts()[0].counts(**filters)

    # -- impact.com -----------------------------------------------------------------------------

    def _impact_parts(self) -> tuple[ImpactDataset, ImpactApi]:
        if self.impact_dataset is None or self.impact_api is None:
            raise ValueError("this sandbox was built with impact=None")
        return self.impact_dataset, self.impact_api

    def impact_config(self, **overrides: Any) -> dict[str, Any]:
        """The tap's `impact` settings for this sandbox (its account type, zone and reports)."""
        dataset, api = self._impact_parts()
        spec = dataset.spec
        config: dict[str, Any] = {
            "base_url": self.http.url + IMPACT_PREFIX,
            "account_sid": self.credentials.impact_account_sid,
            "auth_token": self.credentials.impact_auth_token,
            "account_type": api.account_type,
            "timezone": spec.timezone,
            "reports": [
                {
                    "name": report.name,
                    "report_id": report.report_id,
                    "parameters": dict(report.parameters),
                    "key_fields": list(report.key_fields),
                }
                for report in spec.reports
            ],
            "poll_interval_seconds": 0.01,
            "poll_max_interval_seconds": 0.05,
            "job_deadline_seconds": 30,
            "request_timeout_seconds": 10,
            "max_attempts": 3,
        }
        config.update(overrides)
        return config

    def impact_truth(
        self,
        start: date | None = None,
        end: date | None = None,
        program_ids: Iterable[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Raw rows per tap stream (`impact_programs`, `impact_clicks`,
        `impact_report_<name>`) for days `[start, end)` (default: every day of the data)."""
        return self._impact_parts()[0].truth(start, end, program_ids)

    def impact_counts(
        self,
        start: date | None = None,
        end: date | None = None,
        program_ids: Iterable[str] | None = None,
    ) -> dict[str, int]:
        """`len` of each `impact_truth` list, without building the rows."""
        return self._impact_parts()[0].counts(start, end, program_ids)
