"""`MailkitSandbox`: the Mailkit api alone on a free port, for tests and benchmarks.

The whole `vendor_sandbox.sandbox.Sandbox` serves Mailkit too; this serves it alone (no file
sites), which the api's own tests use: ``with MailkitSandbox() as mk: config = mk.tap_config()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

from typing_extensions import Self, override

from vendor_sandbox.mailkit.api import MailkitApi
from vendor_sandbox.mailkit.data import MailkitDataset, MailkitDataSpec
from vendor_sandbox.servers.base import Lifecycle
from vendor_sandbox.servers.http import HttpServer

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_MD5", "MailkitSandbox"]

DEFAULT_CLIENT_ID = "418911"
DEFAULT_CLIENT_MD5 = "5f4dcc3b5aa765d61d8327deb882cf99"


def tap_settings(endpoint: str, api: MailkitApi, **overrides: Any) -> dict[str, Any]:
    """The tap's `mailkit` settings for an api served at `endpoint`: no pause between calls."""
    config: dict[str, Any] = {
        "endpoint": endpoint,
        "client_id": api.client_id,
        "client_md5": api.client_md5,
        "timezone": api.dataset.spec.timezone,
        "page_size": 25_000,
        "raw_call_interval_seconds": 0,
        "request_timeout_seconds": 10,
        "max_attempts": 3,
    }
    config.update(overrides)
    return config


class MailkitSandbox(Lifecycle):
    """The api of `spec` (default: the small default spec) served on 127.0.0.1:`port`."""

    def __init__(
        self,
        spec: MailkitDataSpec | None = None,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_md5: str = DEFAULT_CLIENT_MD5,
        today: date | None = None,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        self.dataset = MailkitDataset(spec)
        self.api = MailkitApi(
            self.dataset, client_id=client_id, client_md5=client_md5, today=today, clock=clock
        )
        self.http = HttpServer(self.api, port=port)

    @override
    def start(self) -> Self:
        self.http.start()
        return self

    @override
    def stop(self) -> None:
        self.http.stop()

    @property
    def endpoint(self) -> str:
        """The URL of json.fcgi (the server must be started: the port is picked then)."""
        return self.http.url + self.api.endpoint_path

    def tap_config(self, **overrides: Any) -> dict[str, Any]:
        """The tap's Mailkit settings for this sandbox (as the tap will name them)."""
        return tap_settings(self.endpoint, self.api, **overrides)

    def truth(self, **filters: Any) -> dict[str, list[dict[str, Any]]]:
        """`MailkitDataset.truth` (filters: campaign_ids, send_ids, grown)."""
        return self.dataset.truth(**filters)

    def counts(self, **filters: Any) -> dict[str, int]:
        """`MailkitDataset.counts` (filters: campaign_ids, send_ids, grown)."""
        return self.dataset.counts(**filters)
