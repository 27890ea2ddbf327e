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


class JobLimitReachedError(VendorError):
    """The vendor refuses a new export job because too many are queued or running already.

    Not a failure: the job is submitted again once one of them finishes (`jobs` waits, within the
    job deadline). The account's other users' jobs count against the same limit.
    """


class UnitPutOffError(VendorError):
    """The vendor takes no more jobs of this kind today (a daily quota is spent).

    Not a failure: the unit is left for a later run (nothing was submitted, so nothing is in
    state for it); the stream that needs it stops there and ends cleanly.
    """


class JobFailedError(TapEmailTrackingError):
    """An export job ended in a failed state."""


class JobDeadlineError(TapEmailTrackingError):
    """An export job did not finish before the configured deadline."""


class TransportError(TapEmailTrackingError):
    """The network failed and retries were exhausted."""


class UnusableResultError(TapEmailTrackingError):
    """A job's result can never be used as it is: missing, expired, refused or damaged.

    One rule for every vendor: the job is forgotten, so the next run submits (or replays) it. A
    dropped connection or a timeout is a `TransportError` instead, and keeps the job.
    """


class RemoteFileMissingError(UnusableResultError):
    """A result file the vendor announced is not on the file site (or has expired)."""


class RefusedFileNameError(UnusableResultError):
    """A result name from the vendor could leave the download folder, so it is not fetched."""


class CorruptFileError(UnusableResultError):
    """A downloaded file is truncated, malformed or over a limit (ZIP, gzip, XML, CSV)."""


class UnexpectedError(TapEmailTrackingError):
    """A bug or a resource failure (such as MemoryError) while handling one file or job.

    It carries the vendor, stream and file of the work that failed; unlike the expected errors
    above, its traceback is kept in the output.
    """
