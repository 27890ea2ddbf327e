"""HTTP for every vendor: one session, split timeouts, retries that honour Retry-After, no leaks.

Vendors answer slowly (ExactTarget cut requests at ~90 s in peer reports), drop connections and
rate-limit. Transient failures (timeouts, resets, 5xx, 429) are retried with exponential backoff and
jitter, waiting at least what `Retry-After` asks. Non-transient answers go back to the vendor
client, which knows how its error bodies look. Nothing here logs a URL query, a header or a body:
request bodies carry credentials for some vendors (ExactTarget puts the password in the envelope).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from tap_emailtracking.errors import TransportError

LOGGER = logging.getLogger("tap_emailtracking.transports.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionResetError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient HTTP failures."""

    max_attempts: int = 6
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 120.0
    connect_timeout_seconds: float = 15.0
    read_timeout_seconds: float = 300.0


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Read `Retry-After` as seconds (delta or HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class VendorHttp:
    """A requests session bound to one vendor, with retries and safe error reporting."""

    def __init__(
        self,
        *,
        vendor: str,
        policy: RetryPolicy | None = None,
        user_agent: str = "tap-emailtracking",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vendor = vendor
        self.policy = policy or RetryPolicy()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._sleep = sleep

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def _delay(self, attempt: int, floor: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than what the server asked for."""
        cap = min(
            self.policy.max_delay_seconds, self.policy.base_delay_seconds * 2 ** (attempt - 1)
        )
        wait = random.uniform(0, cap)
        if floor is not None:
            wait = max(wait, min(floor, self.policy.max_delay_seconds))
        return wait

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        stream: str | None = None,
        action: str,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request, retrying transient failures; return the last non-transient response.

        `what` names the call in logs and errors ("BulkAsync submit"); `action` is what the user
        should do if retries run out. The URL is reported without its query string.
        """
        safe_url = url.split("?", 1)[0]
        timeout = (self.policy.connect_timeout_seconds, self.policy.read_timeout_seconds)
        last_problem = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            floor: float | None = None
            try:
                response = self.session.request(method, url, timeout=timeout, **kwargs)
            except TRANSIENT_EXCEPTIONS as exc:
                last_problem = type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last_problem = f"HTTP {response.status_code}"
                floor = retry_after_seconds(response.headers)
                response.close()
            if attempt == self.policy.max_attempts:
                break
            wait = self._delay(attempt, floor)
            LOGGER.warning(
                "%s: %s to %s failed with %s (attempt %d of %d); retrying in %.1f s",
                self.vendor,
                what,
                safe_url,
                last_problem,
                attempt,
                self.policy.max_attempts,
                wait,
            )
            self._sleep(wait)
        raise TransportError(
            f"{what} to {safe_url} failed {self.policy.max_attempts} times, "
            f"last with {last_problem}",
            vendor=self.vendor,
            stream=stream,
            action=action,
        )
