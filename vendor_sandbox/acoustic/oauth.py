"""Acoustic's OAuth: the token endpoint, bearer checks, and the SFTP logins tokens allow.

``POST /oauth/token`` (form ``grant_type=refresh_token&client_id&client_secret&refresh_token``)
-> ``{"access_token", "token_type": "bearer", "refresh_token", "expires_in"}``.  Access tokens
are opaque random strings living ``token_lifetime`` seconds (``clock``).  A wrong or revoked
refresh token answers 400, a wrong client 401, both ``{"error": "invalid_grant", ...}``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from typing_extensions import override
from werkzeug.wrappers import Request, Response

from vendor_sandbox.acoustic.base import AcousticState, json_response


@dataclass
class _Token:
    issued: float
    calls: int = 0
    dead: bool = False


class OAuthPart(AcousticState):
    """Tokens: issued, counted, expired; the SFTP password check."""

    def _init_oauth(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        ftp_password: str | None,
        token_lifetime: float,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.ftp_password = ftp_password
        self.token_lifetime = token_lifetime
        self.token_requests = 0
        self.sftp_oauth_logins = 0
        self._tokens: dict[str, _Token] = {}

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token handed out so far (tests search output for them)."""
        return list(self._tokens)

    def issue_token(self) -> str:
        """A fresh access token (as the token endpoint would hand out)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Token(issued=self.clock())
        return token

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as if it expired)."""
        with self._lock:
            for token in self._tokens.values():
                token.dead = True

    def token_is_live(self, token: str) -> bool:
        """Whether ``token`` would be accepted now (does not count as a call)."""
        with self._lock:
            return self._token_ok(token, count=False)

    def _token_ok(self, token: str, *, count: bool) -> bool:
        record = self._tokens.get(token)
        if record is None or record.dead:
            return False
        if self.clock() - record.issued >= self.token_lifetime:
            record.dead = True
            return False
        limit = self.faults.expire_tokens_after_calls
        if limit is not None and record.calls >= limit:
            record.dead = True
            return False
        if count:
            record.calls += 1
        return True

    def sftp_password_check(self, username: str, password: str) -> bool:
        """SFTP login: ``oauth`` + a live access token, or the ftp user's email + password."""
        with self._lock:
            if username == "oauth":
                ok = self._token_ok(password, count=False)
                if not ok and not self.faults.dead_tokens_fail_sftp:
                    record = self._tokens.get(password)
                    ok = record is not None and self.clock() - record.issued < self.token_lifetime
                if ok:
                    self.sftp_oauth_logins += 1
                return ok
        return (
            self.ftp_password is not None
            and username.lower() == self.ftp_user_id.lower()
            and secrets.compare_digest(password.encode(), self.ftp_password.encode())
        )

    def _token(self, request: Request) -> Response:
        with self._lock:
            self.token_requests += 1
        if request.method != "POST":
            return json_response(
                {"error": "invalid_request", "error_description": "POST only"}, 405
            )
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be refresh_token",
                },
                400,
            )
        if not (
            secrets.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
            and secrets.compare_digest(
                form.get("client_secret", "").encode(), self.client_secret.encode()
            )
        ):
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid client credentials"},
                401,
            )
        given = form.get("refresh_token", "")
        if self.faults.revoked_refresh_token or not secrets.compare_digest(
            given.encode(), self.refresh_token.encode()
        ):
            return json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "The refresh token is invalid or has been revoked",
                },
                400,
            )
        token = self.issue_token()
        return json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "refresh_token": self.refresh_token,
                "expires_in": int(self.token_lifetime),
            },
            200,
        )

    @override
    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._lock:
            return self._token_ok(token.strip(), count=True)
