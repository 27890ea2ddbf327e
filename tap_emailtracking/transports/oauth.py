"""OAuth refresh-token grants, with the access token cached for its lifetime.

Acoustic blocks clients that ask for tokens too often, so a token is requested once and reused
until shortly before `expires_in` runs out; a 401 on a call gets exactly one fresh token and one
retry. Every token is registered for log redaction the moment it arrives. The vendor's client
passes the words for what to do (which settings to check), so this module stays vendor-neutral.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from tap_emailtracking import redaction
from tap_emailtracking.errors import AuthenticationError, VendorError
from tap_emailtracking.transports.http import (
    ApiCall,
    VendorHttp,
    excerpt,
    expect_json,
    wrong_shape,
)

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
        endpoint_setting: str,
        refused_action: str,
        forbidden_action: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`endpoint_setting` names the setting holding the token URL's host; `refused_action`
        says what to do when the vendor refuses the grant, `forbidden_action` when a call is
        refused even with a fresh token."""
        self.http = http
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._endpoint_setting = endpoint_setting
        self._refused_action = refused_action
        self._forbidden_action = forbidden_action
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
        what = "OAuth token request"
        response = self.http.request(
            "POST",
            self.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": self._refresh_token,
            },
            what=what,
            stream=stream,
            action=f"check {self._endpoint_setting} and the network",
            endpoint_setting=self._endpoint_setting,
        )
        self.tokens_requested += 1
        answer = ApiCall(
            self.http.vendor,
            what,
            stream,
            f"check {self._endpoint_setting}: it must reach the vendor's API, not a proxy or "
            "login page; re-run later if the vendor is in maintenance",
        )
        body = expect_json(response, answer)
        # Tokens in an answer of the wrong shape are secrets too, before anything quotes it.
        redaction.register_secrets(redaction.secrets_in_config({"answer": body}))
        if not isinstance(body, dict):
            raise wrong_shape(answer, "JSON that is not an object", body)
        token = body.get("access_token")
        if response.status_code in (400, 401, 403) or (
            response.ok and not token and "error" in body
        ):
            code = excerpt(str(body.get("error") or f"HTTP {response.status_code}"))
            raise AuthenticationError(
                f"the OAuth token request was refused ({code})",
                vendor=self.http.vendor,
                stream=stream,
                action=self._refused_action,
            )
        if not response.ok:
            raise VendorError(
                f"the OAuth token request answered HTTP {response.status_code}",
                vendor=self.http.vendor,
                stream=stream,
                action="re-run later; if it persists, check the vendor's status page",
            )
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = -1.0
        if not token or not isinstance(token, str) or lifetime < 0:
            raise wrong_shape(
                answer, "a JSON object without a usable access_token and expires_in", body
            )
        self._token = token
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
                method,
                url,
                headers=all_headers,
                what=what,
                stream=stream,
                action=action,
                endpoint_setting=self._endpoint_setting,
                **kwargs,
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
            action=self._forbidden_action,
        )
