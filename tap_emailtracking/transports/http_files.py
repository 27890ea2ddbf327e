"""Result files over HTTP: a `FileSite` whose "names" are the result URLs a vendor announces.

The shared file-site code (`files.py`) owns retries, resume, progress and size logging; this module
only speaks HTTP. A download is one GET streamed to disk; after a dropped connection the next
attempt asks for the rest with `Range: bytes=<offset>-` and checks the `Content-Range` it gets (a
200 instead means the server ignores ranges: the file starts over). The raw bytes are kept
(`Accept-Encoding: identity`, no transparent gunzip) so offsets mean the same on every attempt;
`formats/` opens a gzip or ZIP by its magic bytes.

Redirects are followed here, by hand. Within the vendor's origin they keep the credentials; to
another origin (impact.com's short-lived signed URL on a storage host) they are followed with a
bare GET: no Authorization header, no cookies, no vendor headers, and never from https to http.
Signed URLs carry their secret in the query string, so no URL is ever logged or put in a message
with its query.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from typing_extensions import override

from tap_emailtracking.errors import (
    AuthenticationError,
    CorruptFileError,
    RefusedFileNameError,
    RemoteFileMissingError,
    TapEmailTrackingError,
    TransportError,
    VendorError,
)
from tap_emailtracking.transports.files import (
    DownloadSink,
    FailureKind,
    FileSite,
    FileSiteSettings,
    ProgressCallback,
    RemoteFile,
    ShortTransferError,
    logger,
)
from tap_emailtracking.transports.http import (
    MAX_REDIRECTS,
    RETRY_STATUSES,
    TRANSIENT_EXCEPTIONS,
    answer_head,
    excerpt,
    origin,
    redirect_target,
    safe_address,
    starts_like_html,
)
from tap_emailtracking.transports.retry import Sleep, retry_after_seconds

CHUNK_BYTES = 1 << 16
MAX_RETRY_AFTER_SECONDS = 300.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
_QUERY = re.compile(r"\?[^\s'\"<>)]*")


class _QueryScrubber(logging.Filter):
    """Cut URL queries out of urllib3's debug lines ("GET /file?X-Signature=... 200")."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY.sub("?…", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


_URLLIB3_LOGGER = logging.getLogger("urllib3.connectionpool")


def _scrub_urllib3_logs() -> None:
    """Install the scrubber once; urllib3 logs request lines only at DEBUG, but users set it."""
    if not any(isinstance(f, _QueryScrubber) for f in _URLLIB3_LOGGER.filters):
        _URLLIB3_LOGGER.addFilter(_QueryScrubber())


class ResultNotReadyError(VendorError):
    """The result URL answered "not finished yet" (impact.com: 202 with the job's JSON).

    Not an unusable result: the job is kept, and the next run polls it again.
    """


class HttpStatusError(Exception):
    """A non-file answer, classified by `_classify`; carries nothing secret."""

    def __init__(
        self,
        status: int,
        url: str,
        *,
        vendor_host: bool,
        retry_after: float | None,
        quote: str,
    ) -> None:
        super().__init__(f"HTTP {status} from {safe_address(url)}")
        self.status = status
        self.url = url
        self.vendor_host = vendor_host
        self.retry_after = retry_after
        self.quote = quote


class _RangeMismatchError(Exception):
    """A resume got bytes other than those asked for; the file starts over on the next attempt."""


def http_site_settings(
    base_url: str,
    *,
    username: str = "",
    password: str = "",
    timeout_seconds: float = 60.0,
    max_attempts: int = 5,
    tls_verify: bool = True,
    tls_ca_file: str | None = None,
    config_key: str = "files",
) -> FileSiteSettings:
    """Settings for the vendor host at `base_url`; `username` empty means no HTTP Basic auth."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) base URL: {safe_address(base_url)}")
    return FileSiteSettings(
        protocol="https" if scheme == "https" else "http",
        host=parts.hostname,
        port=parts.port,
        username=username,
        password=password,
        timeout_seconds=timeout_seconds,
        max_attempts=max_attempts,
        tls_verify=tls_verify,
        tls_ca_file=tls_ca_file,
        config_key=config_key,
    )


class HttpFileSite(FileSite):
    """Download result URLs of one vendor host to disk, resuming with Range after a drop.

    `download(url, destination)` takes an absolute URL or one relative to the vendor host.
    `credentials_setting` names the settings that hold the credentials, for an auth failure.
    """

    def __init__(
        self,
        settings: FileSiteSettings,
        *,
        vendor: str,
        stream: str | None = None,
        sleep: Sleep = time.sleep,
        headers: Mapping[str, str] | None = None,
        credentials_setting: str | None = None,
        user_agent: str = "tap-emailtracking",
    ) -> None:
        super().__init__(settings, vendor=vendor, stream=stream, sleep=self._sleep_honouring)
        self._real_sleep = sleep
        self._retry_after: float | None = None
        self._headers = dict(headers or {})
        self._user_agent = user_agent
        self._credentials_setting = credentials_setting or (f"{settings.config_key} credentials")
        self._vendor_session: requests.Session | None = None
        self._bare_session: requests.Session | None = None
        self._urls: dict[str, str] = {}  # safe name (no query) -> full URL, for this download
        self._total: int | None = None  # the file's size as the first answer gave it

    # --- the public API: URLs instead of names

    @override
    def download(
        self,
        name: str,
        destination: Path,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Download the result at `name` (a URL, absolute or relative to the vendor host).

        Logs and messages name the URL without its query (a signed URL's secret lives there).
        """
        url = self._absolute(name)
        label = safe_address(url)
        self._urls[label] = url
        self._total = None
        try:
            return super().download(label, destination, on_progress=on_progress)
        finally:
            self._urls.pop(label, None)

    @override
    def list_files(self) -> list[RemoteFile]:
        """An HTTP result host has no folder to list: results are announced by the vendor's API."""
        raise NotImplementedError("an HTTP result site cannot be listed")

    @override
    def remote_path(self, name: str) -> str:
        """The full URL behind a name `download` handed to the shared code."""
        return self._urls.get(name) or self._absolute(name)

    def _absolute(self, name: str) -> str:
        """`name` as an absolute URL; refused when it is no http(s) URL or would leave https."""
        url = urljoin(self.settings.url + "/", name.strip())
        parts = urlsplit(url)
        problem = None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "it is not an http(s) URL"
        elif parts.username is not None or parts.password is not None:
            problem = "it carries a user name or password"
        elif self.settings.protocol == "https" and parts.scheme != "https":
            problem = "it is plain http while the vendor's API is https"
        if problem is None:
            return url
        raise self._error(
            RefusedFileNameError,
            f"refused the result URL {safe_address(url)}: {problem}, so it is not downloaded",
            action="re-run the sync: the job that announced it is forgotten and a new one is "
            "submitted; if the vendor announces such a URL again, report it to them",
        )

    # --- protocol hooks

    @override
    def _is_connected(self) -> bool:
        return self._vendor_session is not None and self._bare_session is not None

    @override
    def _connect(self) -> None:
        _scrub_urllib3_logs()
        vendor = requests.Session()
        vendor.headers.update(
            {"User-Agent": self._user_agent, "Accept-Encoding": "identity", **self._headers}
        )
        bare = requests.Session()  # for other origins: no auth, cookies or vendor headers
        bare.headers.update({"User-Agent": self._user_agent, "Accept-Encoding": "identity"})
        self._vendor_session, self._bare_session = vendor, bare

    @override
    def _disconnect(self) -> None:
        for session in (self._vendor_session, self._bare_session):
            if session is not None:
                session.close()
        self._vendor_session = self._bare_session = None

    def _session(self, *, vendor_host: bool) -> requests.Session:
        if self._vendor_session is None or self._bare_session is None:
            self._connect()  # the shared retry loop connects first; this keeps mypy sure
        session = self._vendor_session if vendor_host else self._bare_session
        if session is None:  # pragma: no cover
            raise RuntimeError("HTTP sessions missing after connect")
        return session

    @override
    def _remote_size(self, path: str) -> int | None:
        """Unknown until the GET answers: signed URLs are signed for GET alone, so no HEAD."""
        return None

    @override
    def _list(self, folder: str) -> list[RemoteFile]:
        raise NotImplementedError("an HTTP result site cannot be listed")

    @override
    def _retrieve(self, path: str, offset: int, size: int | None, sink: DownloadSink) -> None:
        response, url, vendor_host = self._get(path, offset)
        try:
            start, expected = self._body_range(response, url, vendor_host, offset, sink)
            if expected is not None and expected <= 0:
                return
            received = 0
            for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                if received == 0 and start == 0:
                    self._refuse_page(chunk, response, url)
                sink(chunk)
                received += len(chunk)
            if expected is not None and received < expected:
                raise ShortTransferError(
                    f"the transfer ended at byte {start + received} of {start + expected}"
                )
        finally:
            response.close()

    @override
    def _classify(self, exc: Exception) -> FailureKind | None:
        if isinstance(exc, HttpStatusError):
            return self._classify_status(exc)
        if isinstance(exc, requests.exceptions.SSLError):
            return "fatal"
        if isinstance(exc, _RangeMismatchError | urllib3.exceptions.HTTPError):
            return "retry"
        if isinstance(exc, (*TRANSIENT_EXCEPTIONS, OSError)):
            return "retry"
        return None

    # --- requests and answers

    def _get(self, url: str, offset: int) -> tuple[requests.Response, str, bool]:
        """GET `url` (from `offset`), following redirects; credentials go to the vendor alone."""
        vendor_origin = origin(self.settings.url)
        timeout = (self.settings.timeout_seconds, self.settings.timeout_seconds)
        verify: bool | str = self.settings.tls_ca_file or self.settings.tls_verify
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        auth = (self.settings.username, self.settings.password) if self.settings.username else None
        for hop in range(MAX_REDIRECTS + 1):
            vendor_host = origin(url) == vendor_origin
            session = self._session(vendor_host=vendor_host)
            response = session.get(
                url,
                headers=headers,
                auth=auth if vendor_host else None,
                timeout=timeout,
                verify=verify,
                stream=True,
                allow_redirects=False,
            )
            target = redirect_target(response, url)
            if target is None:
                return response, url, vendor_host
            response.close()
            self._check_redirect(url, target, response.status_code)
            if hop < MAX_REDIRECTS and origin(target) != vendor_origin:
                logger.info(
                    "%s: the result download was redirected (HTTP %d) to %s; following it "
                    "without credentials",
                    self._who(),
                    response.status_code,
                    safe_address(target, path=False),
                )
            url = target
        raise self._error(
            VendorError,
            f"the result download was redirected more than {MAX_REDIRECTS} times "
            f"(last to {safe_address(url)})",
            action="re-run the sync later; if it repeats, report the redirect loop to the vendor",
        )

    def _check_redirect(self, url: str, target: str, status: int) -> None:
        """Refuse a redirect off http(s), or from https to http, before anything is sent."""
        scheme = urlsplit(target).scheme.lower()
        if scheme == "https" or (scheme == "http" and urlsplit(url).scheme.lower() == "http"):
            return
        raise self._error(
            VendorError,
            f"the result download from {safe_address(url)} was redirected (HTTP {status}) to "
            f"{safe_address(target)}, which is not https; the tap does not follow it",
            action="re-run the sync later (the job is kept); if it repeats, report to the vendor "
            "that their download link leaves https",
        )

    def _body_range(
        self,
        response: requests.Response,
        url: str,
        vendor_host: bool,
        offset: int,
        sink: DownloadSink,
    ) -> tuple[int, int | None]:
        """Where the body starts in the file and how many bytes it should hold (None: unknown).

        Raises for any answer that is not (part of) the file.
        """
        status = response.status_code
        length = _int_header(response, "Content-Length")
        if status == 200:
            if offset:
                logger.info(
                    "%s: %s ignored the resume request (HTTP 200, whole file); starting over",
                    self._who(),
                    safe_address(url, path=False),
                )
                sink.restart()
            self._same_total(length, sink)
            return 0, length
        if status == 206 and offset:
            first, last, total = _content_range(response)
            if first != offset or last < first:
                sink.restart()
                raise _RangeMismatchError(
                    f"asked for bytes from {offset}, got a range starting at {first}"
                )
            self._same_total(total, sink)
            return first, last - first + 1
        if status == 416 and offset:
            match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
            if match is not None and int(match.group(1)) == offset:
                return offset, 0  # the file was complete already
            sink.restart()
            raise _RangeMismatchError(f"the server cannot send bytes from {offset}")
        if status == 202:
            raise self._not_ready(response, url)
        raise HttpStatusError(
            status,
            url,
            vendor_host=vendor_host,
            retry_after=retry_after_seconds(response.headers),
            quote=excerpt(_read_some(response)),
        )

    def _same_total(self, total: int | None, sink: DownloadSink) -> None:
        """A file whose size changed between attempts cannot be stitched: start it over."""
        if total is None:
            return
        if self._total is not None and total != self._total:
            previous, self._total = self._total, total
            sink.restart()
            raise _RangeMismatchError(f"the file was {previous} bytes and is now {total}")
        self._total = total

    def _refuse_page(self, head: bytes, response: requests.Response, url: str) -> None:
        """An HTML page where the file should be (a proxy, a login or an "expired" page)."""
        if not starts_like_html(answer_head(head)):
            return
        raise self._error(
            CorruptFileError,
            f"the result download from {safe_address(url)} answered an HTML page (a proxy, "
            f'login or error page?) instead of the file: "{excerpt(head, html=True)}"',
            action="re-run the sync: the job is forgotten and its export requested again; if "
            "it repeats, check for a proxy or firewall between this machine and the vendor",
        )

    def _not_ready(self, response: requests.Response, url: str) -> ResultNotReadyError:
        return self._error(
            ResultNotReadyError,
            f"the result download from {safe_address(url)} answered HTTP 202 (not finished "
            f'yet) instead of the file: "{excerpt(_read_some(response))}"',
            action="re-run the sync later: the job is kept in state and polled again",
        )

    def _classify_status(self, exc: HttpStatusError) -> FailureKind:
        if exc.status in RETRY_STATUSES:
            if exc.retry_after is not None:
                self._retry_after = exc.retry_after
            return "retry"
        if exc.status in (404, 410):
            return "missing"
        if exc.status in (401, 403):
            # The vendor host judges credentials; another host (a signed URL) judges the
            # signature, and a refused signature has expired.
            if not exc.vendor_host:
                return "missing"
            return "auth" if exc.status == 401 else "denied"
        return "fatal"

    def _sleep_honouring(self, seconds: float) -> None:
        """The shared retry loop's backoff, never shorter than the server's `Retry-After`."""
        floor, self._retry_after = self._retry_after, None
        if floor is not None:
            seconds = max(seconds, min(floor, MAX_RETRY_AFTER_SECONDS))
        self._real_sleep(seconds)

    # --- errors

    @override
    def _final_error(
        self, kind: FailureKind, exc: Exception, *, name: str | None, path: str
    ) -> TapEmailTrackingError:
        subject = self._subject(path)
        status = exc.status if isinstance(exc, HttpStatusError) else None
        where = safe_address(exc.url) if isinstance(exc, HttpStatusError) else subject
        if kind == "auth":
            return self._error(
                AuthenticationError,
                f"the vendor refused the credentials for the result download (HTTP {status})",
                subject=subject,
                action=f"check {self._credentials_setting}",
            )
        if kind == "denied":
            return self._error(
                AuthenticationError,
                f"the vendor does not let these credentials download the result (HTTP {status})",
                subject=subject,
                action="give the API user (or token) permission to download export results, "
                f"or check {self._credentials_setting}",
            )
        if kind == "missing":
            signed = isinstance(exc, HttpStatusError) and not exc.vendor_host
            what = (
                f"the signed download link at {where} was refused (HTTP {status}): it has "
                "expired or the result is gone"
                if signed
                else f"the result at {where} is gone (HTTP {status}): it has expired or was "
                "never there"
            )
            return self._error(
                RemoteFileMissingError,
                what,
                subject=subject,
                action="re-run the sync: the job is forgotten and its export requested again "
                "(vendors keep results for a limited time)",
            )
        if isinstance(exc, HttpStatusError):
            return self._error(
                VendorError,
                f'the result download from {where} answered HTTP {status}: "{exc.quote}"',
                subject=subject,
                action="re-run the sync (the job is kept); if it repeats, report the answer "
                "to the vendor",
            )
        return self._error(
            TransportError,
            f"the result download failed: {self._describe(exc)}",
            subject=subject,
            action=f"check the TLS settings ({self.settings.setting('tls_verify')}, "
            f"{self.settings.setting('tls_ca_file')}) and that {self.settings.url} is the "
            "vendor's address",
        )

    @override
    def _describe(self, exc: BaseException) -> str:
        """The shared one-line description, with every URL query cut off."""
        return _QUERY.sub("?…", super()._describe(exc))

    @override
    def _subject(self, path: str) -> str:
        return safe_address(path)


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _content_range(response: requests.Response) -> tuple[int, int, int | None]:
    """(first, last, total) of a 206; an unreadable header counts as a wrong range."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
    if match is None:
        raise _RangeMismatchError("a partial answer without a readable Content-Range")
    total = match.group(3)
    return int(match.group(1)), int(match.group(2)), None if total == "*" else int(total)


def _read_some(response: requests.Response) -> bytes:
    """The start of an answer's body for a quote, never the whole of a large one."""
    try:
        return response.raw.read(4096, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, OSError):
        return b""
