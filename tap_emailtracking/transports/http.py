"""HTTP for every vendor: one session, split timeouts, retries that honour Retry-After, no leaks.

Vendors answer slowly (ExactTarget cut requests at ~90 s in peer reports), drop connections and
rate-limit. Transient failures (timeouts, resets, 5xx, 429) are retried by the shared policy in
`retry.py` (full jitter, at least what `Retry-After` asks). Every call first asks the vendor's
`RateBudget` (`ratelimit.py`), which every answer's rate-limit headers feed, so the tap slows
down before the vendor has to say 429. Non-transient answers go back to the vendor client, which
knows how its error bodies look. Nothing here logs a URL query, a header or a body: request
bodies carry credentials for some vendors (ExactTarget puts the password in the envelope).

Redirects are followed here, not by requests: a 307/308 makes requests re-send the body (and
with it passwords and refresh tokens) to wherever `Location` points. Only a redirect within the
same origin (scheme, host, port) is followed, a bounded number of times; any other stops the call
before a single byte goes to the new place. `expect_json` and `expect_xml` check that an answer is
of the kind the vendor speaks before anyone reads it, so a proxy's or a login page is named as
such instead of being misread (as "no job definition exists", say).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tap_emailtracking import redaction
from tap_emailtracking.errors import TransportError, VendorError
from tap_emailtracking.transports import retry
from tap_emailtracking.transports.ratelimit import RateBudget
from tap_emailtracking.transports.retry import (
    RetryPolicy,
    Sleep,
    TransientError,
    retry_after_seconds,
)

LOGGER = logging.getLogger("tap_emailtracking.transports.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionResetError,
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_ARGUMENTS = ("data", "json", "files")


@dataclass(frozen=True)
class HttpPolicy(RetryPolicy):
    """The shared retry policy plus the timeouts of one HTTP call (connect, then each read)."""

    connect_timeout_seconds: float = 15.0
    read_timeout_seconds: float = 300.0


class VendorHttp:
    """A requests session bound to one vendor, with retries and safe error reporting."""

    def __init__(
        self,
        *,
        vendor: str,
        policy: HttpPolicy | None = None,
        user_agent: str = "tap-emailtracking",
        sleep: Sleep = time.sleep,
        clock: Callable[[], float] = time.time,
        budget: RateBudget | None = None,
    ) -> None:
        """`budget` defaults to a fresh one for this vendor, on the same clock and sleep."""
        self.vendor = vendor
        self.policy = policy or HttpPolicy()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._sleep = sleep
        self._clock = clock
        self.budget = budget or RateBudget(vendor, clock=clock, sleep=sleep)

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        stream: str | None = None,
        action: str,
        endpoint_setting: str,
        body_in_place: bool = False,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request, retrying transient failures; return the last non-transient response.

        `what` names the call in logs and errors ("BulkAsync submit"); `action` is what the user
        should do if retries run out; `endpoint_setting` names the setting that holds this URL,
        for a redirect the tap refuses to follow. The URL is reported without its query string.
        `body_in_place`: the body is read into one buffer of the announced size (a `bytearray`
        as `response.content`), not joined from chunks, so a 30 MB page costs 30 MB, not 60.
        `retry_statuses`: the answers tried again (a call whose 429 means "not today" leaves it
        out, to read the 429 itself).
        """
        for hop in range(MAX_REDIRECTS + 1):
            response = self._send(
                method,
                url,
                what=what,
                stream=stream,
                action=action,
                body_in_place=body_in_place,
                retry_statuses=retry_statuses,
                **kwargs,
            )
            target = redirect_target(response, url)
            if target is None:
                return response
            status = response.status_code
            response.close()
            self._refuse_foreign_redirect(url, target, status, what, stream, endpoint_setting)
            if hop == MAX_REDIRECTS:
                break
            LOGGER.info(
                "%s: %s was redirected (HTTP %d) within %s; following it",
                self.vendor,
                what,
                status,
                safe_address(url, path=False),
            )
            if status in (301, 302, 303) and method.upper() not in ("GET", "HEAD"):
                # What every HTTP client does: these redirects are followed with a bodiless GET.
                method = "GET"
                kwargs = {k: v for k, v in kwargs.items() if k not in _BODY_ARGUMENTS}
            url = target
        raise VendorError(
            f"{what} was redirected more than {MAX_REDIRECTS} times within "
            f"{safe_address(url, path=False)}",
            vendor=self.vendor,
            stream=stream,
            action=f"check {endpoint_setting}: set it to the address the vendor answers at",
        )

    def _refuse_foreign_redirect(
        self,
        url: str,
        target: str,
        status: int,
        what: str,
        stream: str | None,
        endpoint_setting: str,
    ) -> None:
        """Stop at a redirect to another origin: the request would carry credentials there."""
        if origin(target) == origin(url):
            return
        downgrade = origin(url)[0] == "https" and origin(target)[0] != "https"
        why = "from https to http" if downgrade else "to another origin (scheme, host or port)"
        raise VendorError(
            f"{what} to {safe_address(url)} was redirected (HTTP {status}) {why}, to "
            f"{safe_address(target)}; the tap does not follow it, so nothing (no body, no "
            "credentials) was sent there",
            vendor=self.vendor,
            stream=stream,
            action=f"check {endpoint_setting}: if you trust the new address, set it there"
            + (" (over https)" if downgrade else "")
            + "; otherwise a proxy or a wrong host answers for the vendor",
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        stream: str | None,
        action: str,
        body_in_place: bool = False,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        **kwargs: Any,
    ) -> requests.Response:
        """One request to one URL (redirects not followed), retried while failures are transient."""
        safe_url = safe_address(url)
        timeout = (self.policy.connect_timeout_seconds, self.policy.read_timeout_seconds)

        def attempt() -> requests.Response:
            self.budget.acquire()
            try:
                response = self.session.request(
                    method,
                    url,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=body_in_place,
                    **kwargs,
                )
                if body_in_place:
                    response._content = read_in_place(response)  # requests' own slot
            except TRANSIENT_EXCEPTIONS as exc:
                raise TransientError(type(exc).__name__) from None  # its text may hold the query
            # A 429 the caller reads itself (a daily quota) says nothing of the hourly budget.
            refused = response.status_code == 429 and 429 in retry_statuses
            self.budget.observe(response.headers, refused=refused)
            if response.status_code not in retry_statuses:
                return response
            response.close()
            raise TransientError(
                f"HTTP {response.status_code}",
                wait_at_least=retry_after_seconds(response.headers, now=self._clock),
            )

        def give_up(failure: TransientError, attempts: int) -> TransportError:
            return TransportError(
                f"{what} to {safe_url} failed {attempts} times, last with {failure.problem}",
                vendor=self.vendor,
                stream=stream,
                action=action,
            )

        return retry.call(
            attempt,
            policy=self.policy,
            sleep=self._sleep,
            who=self.vendor,
            what=f"{what} to {safe_url}",
            give_up=give_up,
        )


def _as_bytes(response: requests.Response) -> None:
    """A body read in place (`read_in_place`) becomes bytes before the text helpers see it."""
    if isinstance(response.content, bytearray):
        response._content = bytes(response.content)


def read_in_place(response: requests.Response) -> bytes:
    """The whole body in one buffer sized by Content-Length (grown if the server sends more).

    Typed as bytes for the callers: a `bytearray` reads the same for every parser used here.
    A connection dropped mid-body raises requests' own (transient) errors, so it is retried.
    """
    announced = response.headers.get("Content-Length", "")
    if not announced.isdigit():
        return response.content
    buffer = bytearray(int(announced))
    size = 0
    for chunk in response.iter_content(1 << 20):
        end = size + len(chunk)
        if end > len(buffer):
            buffer.extend(bytes(end - len(buffer)))
        buffer[size:end] = chunk
        size = end
    del buffer[size:]
    return buffer  # type: ignore[return-value]


# -- redirects ----------------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; unreadable ports are None."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return scheme, "", None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def safe_address(url: str, *, path: bool = True) -> str:
    """A URL fit for a message: no user info, query or fragment, secrets redacted."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    address = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    if path:
        address += parts.path
    return redaction.redact(address)


def redirect_target(response: requests.Response, url: str) -> str | None:
    """The absolute URL a redirect answer points to, or None when it is not one."""
    if response.status_code not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("Location")
    if not location:
        return None
    return urljoin(url, location.strip())


# -- answers of the right kind ------------------------------------------------------------------

EXCERPT_CHARS = 200
_EXCERPT_SOURCE_BYTES = 65536
_HTML_TAGS = frozenset(
    (
        *("html", "head", "body", "title", "meta", "link", "script", "style", "noscript"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "p", "div", "span", "pre", "table", "center"),
        *("form", "br", "hr", "img", "iframe"),
    )
)
_FIRST_TAG = re.compile(
    rb"(?:\s*<\?.*?\?>|\s*<!--.*?-->)*\s*<(!doctype\s+html|[a-z][a-z0-9]*)",
    re.IGNORECASE | re.DOTALL,
)
_TAG = re.compile(r"<[^<>]{0,2000}>")
_BOM = b"\xef\xbb\xbf"


def answer_head(content: bytes) -> bytes:
    """The first non-blank bytes of an answer, without a UTF-8 byte order mark."""
    head = content[:4096].lstrip()
    return head[len(_BOM) :].lstrip() if head.startswith(_BOM) else head


def starts_like_html(head: bytes) -> bool:
    """The answer starts like an HTML document (doctype or an HTML element first)."""
    match = _FIRST_TAG.match(head)
    if match is None:
        return False
    tag = match.group(1).lower()
    return tag.startswith(b"!doctype") or tag.decode("ascii") in _HTML_TAGS


def is_html(response: requests.Response) -> bool:
    """An HTML page: it starts like one, or it is labelled HTML and is no markup of any kind."""
    head = answer_head(response.content)
    if starts_like_html(head):
        return True
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type and not head.startswith(b"<")


def excerpt(content: bytes | str, *, html: bool = False) -> str:
    """A short, whitespace-collapsed, redacted quote of an answer (tags dropped from HTML)."""
    if isinstance(content, bytes):
        content = content[:_EXCERPT_SOURCE_BYTES].decode("utf-8", "replace")
    text = redaction.redact(content[:_EXCERPT_SOURCE_BYTES])
    if html:
        text = redaction.redact(_TAG.sub(" ", text))
    text = " ".join(text.split())
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 1] + "…"
    return text


@dataclass(frozen=True)
class ApiCall:
    """One call, for errors about its answer: `action` says what to check when it is wrong."""

    vendor: str
    what: str
    stream: str | None
    action: str

    def error(self, what: str) -> VendorError:
        return VendorError(what, vendor=self.vendor, stream=self.stream, action=self.action)


def _wrong_kind(response: requests.Response, expected: str, call: ApiCall) -> VendorError:
    status = "" if response.status_code == 200 else f" with HTTP {response.status_code}"
    if is_html(response):
        found = "an HTML page (a proxy, login or maintenance page?)"
        quote = excerpt(response.content, html=True)
    else:
        content_type = response.headers.get("Content-Type") or "no Content-Type"
        found = f"something that is not {expected} ({content_type})"
        quote = excerpt(response.content)
    return call.error(
        f'{call.what} answered {found}{status} where {expected} was expected: "{quote}"'
    )


def expect_json(response: requests.Response, call: ApiCall, *, allow_empty: bool = False) -> Any:
    """The parsed JSON of an answer; an HTML page or other non-JSON is a `VendorError`.

    The body decides, not the label: JSON served as text/html is still read.
    """
    _as_bytes(response)
    head = answer_head(response.content)
    if allow_empty and not head:
        return None
    if starts_like_html(head):
        raise _wrong_kind(response, "JSON", call)
    try:
        return json.loads(response.content)
    except ValueError:
        raise _wrong_kind(response, "JSON", call) from None


def expect_xml(response: requests.Response, call: ApiCall) -> bytes:
    """The body of an answer that starts as XML; an HTML page or anything else is a `VendorError`.

    The caller parses it (with entities off) and checks its root: this only tells XML from HTML.
    """
    _as_bytes(response)
    head = answer_head(response.content)
    if starts_like_html(head) or not head.startswith(b"<"):
        raise _wrong_kind(response, "XML", call)
    return response.content


def wrong_shape(call: ApiCall, problem: str, value: object) -> VendorError:
    """The error for an answer of the right kind but the wrong shape ("a list where ...")."""
    try:
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
    except ValueError:
        shown = repr(value)
    return call.error(f'{call.what} answered {problem}: "{excerpt(shown)}"')
