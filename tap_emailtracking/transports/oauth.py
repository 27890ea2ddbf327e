"""OAuth refresh-token grants, with the access token cached for its lifetime.

Acoustic blocks clients that ask for tokens too often, so a token is requested once and reused
until shortly before `expires_in` runs out; a 401 on a call gets exactly one fresh token and one
retry. Every token is registered for log redaction the moment it arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from tap_emailtracking import redaction
from tap_emailtracking.errors import AuthenticationError, VendorError
from tap_emailtracking.transports.http import VendorHttp

LOGGER = logging.getLogger("tap_emailtracking.transports.oauth")
EXPIRY_MARGIN_SECONDS = 60.0


class RefreshTokenAuth:
    """Bearer tokens from `grant_type=refresh_token`, cached until shortly before expiry."""

    def __init__(
        self,
        http: VendorHttp,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        config_key: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._config_key = config_key
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_requested = 0

    def token(self, *, stream: str | None = None) -> str:
        """A valid access token, asking the vendor only when the cached one is (nearly) expired."""
        if self._token is None or self._clock() >= self._expires_at:
            self._fetch(stream)
        assert self._token is not None  # noqa: S101 - _fetch sets it or raises
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the vendor refused it)."""
        self._token = None

    def _fetch(self, stream: str | None) -> None:
        response = self.http.request(
            "POST",
            self.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": self._refresh_token,
            },
            what="OAuth token request",
            stream=stream,
            action=f"check {self._config_key}.api_host (or pod) and the network",
        )
        self.tokens_requested += 1
        body: dict[str, Any] = {}
        try:
            parsed = response.json()
            if isinstance(parsed, dict):
                body = parsed
        except ValueError:
            pass
        token = body.get("access_token")
        if response.status_code in (400, 401, 403) or (response.ok and not token):
            code = str(body.get("error") or f"HTTP {response.status_code}")
            raise AuthenticationError(
                f"the OAuth token request was refused ({code})",
                vendor=self.http.vendor,
                stream=stream,
                action=f"create a new refresh token (Application Account Access) and set "
                f"{self._config_key}.refresh_token; check {self._config_key}.client_id, "
                f"client_secret and that the pod/api_host is the account's",
            )
        if not response.ok:
            raise VendorError(
                f"the OAuth token request answered HTTP {response.status_code}",
                vendor=self.http.vendor,
                stream=stream,
                action="re-run later; if it persists, check the vendor's status page",
            )
        redaction.register_secrets([token])
        lifetime = float(body.get("expires_in") or 3600)
        self._token = str(token)
        self._expires_at = self._clock() + max(0.0, lifetime - EXPIRY_MARGIN_SECONDS)
        LOGGER.info("%s: got an access token valid for %.0f s", self.http.vendor, lifetime)

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        stream: str | None,
        action: str,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send with a bearer token; on 401 get one fresh token and retry once."""
        for attempt in (1, 2):
            all_headers = {
                **(headers or {}),
                "Authorization": f"Bearer {self.token(stream=stream)}",
            }
            response = self.http.request(
                method, url, headers=all_headers, what=what, stream=stream, action=action, **kwargs
            )
            if response.status_code != 401:
                return response
            response.close()
            self.invalidate()
            if attempt == 1:
                LOGGER.info(
                    "%s: %s answered 401; refreshing the token once", self.http.vendor, what
                )
        raise AuthenticationError(
            f"{what} was refused with HTTP 401 even with a fresh access token",
            vendor=self.http.vendor,
            stream=stream,
            action=f"check that the user of {self._config_key}.refresh_token may use this API "
            "(BEX needs the organization admin)",
        )
