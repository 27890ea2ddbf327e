"""One error family for the tap.

Every message says which vendor, which stream or unit of work (window, batch, file), what happened
and what the user should do next, so a failed scheduled run explains itself in one log line.
Messages never carry secrets: callers pass only non-secret facts, and `redaction` scrubs every log
line as a second line of defence.
"""

from __future__ import annotations


class TapEmailTrackingError(Exception):
    """Base class: a failure the user must act on; the sync exits non-zero."""

    def __init__(
        self,
        what: str,
        *,
        vendor: str,
        action: str,
        stream: str | None = None,
        subject: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.stream = stream
        self.subject = subject
        self.what = what
        self.action = action
        where = vendor if stream is None else f"{vendor} / {stream}"
        about = f" ({subject})" if subject else ""
        super().__init__(f"{where}{about}: {what}. What to do: {action}")


class ConfigurationError(TapEmailTrackingError):
    """A setting is missing, contradictory or out of range."""


class AuthenticationError(TapEmailTrackingError):
    """The vendor or file site refused the credentials."""


class VendorError(TapEmailTrackingError):
    """The vendor answered with an error body (often inside an HTTP 200)."""


class JobFailedError(TapEmailTrackingError):
    """An export job ended in a failed state."""


class JobDeadlineError(TapEmailTrackingError):
    """An export job did not finish before the configured deadline."""


class TransportError(TapEmailTrackingError):
    """The network failed and retries were exhausted."""


class RemoteFileMissingError(TapEmailTrackingError):
    """A result file the vendor announced is not on the file site."""


class CorruptFileError(TapEmailTrackingError):
    """A downloaded file is truncated or malformed (ZIP, XML, CSV)."""
