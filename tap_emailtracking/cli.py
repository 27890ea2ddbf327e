"""How a run of the tap ends: signals, expected and unexpected errors, exit codes, the summary.

Schedulers (Meltano, Airflow, cron) read only the exit code, so an interrupted or failed run must
never end 0 (the SDK's own signal handler does). This module imports only the standard library,
because the package imports it first: its signal handlers are in place from the tap's first
instruction.

* Before the run has begun (imports), SIGINT/SIGTERM end the process at once with 130/143 and one
  ERROR line: nothing has been written yet.
* During the run, a signal raises `Interrupted`. It is a BaseException, so no `except Exception`
  retry loop swallows it; the stream generators unwind without reaching their commit, so STATE
  stays at the last finished unit of work. A block of output being written is never cut: a
  signal inside `shielded()` is raised when the block is out.
* A second signal while the first unwinds ends the process at once (STATE is already honest).

Expected errors (`TapEmailTrackingError` except `UnexpectedError`, and the SDK's config
validation) are one ERROR line ending in the error's name; their traceback goes to the debug log.
Anything else keeps its traceback. Both exit 1.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, NoReturn

LOGGER = logging.getLogger("tap-emailtracking")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
FAILED = 1
TAP = "tap-emailtracking"
# The SDK logs this at ERROR for every exception leaving a stream; ours already name the stream.
_SDK_STREAM_ERROR = "An unhandled error occurred while syncing '%s'"


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during the run; unwinds everything without committing."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = EXIT_CODES[signal.Signals(signum)]


class _Run:
    """Where the process is: starting, running (signals raise) or ending (signals exit)."""

    running = False
    interrupted: int | None = None  # the first signal of this run
    shield_depth = 0
    deferred: int | None = None  # a signal that arrived inside `shielded()`


def _interruption_line(signum: int, where: str) -> str:
    name = signal.Signals(signum).name
    return (
        f"{where}: interrupted by {name}. STATE holds every unit of work (window, file) finished "
        "before it; the unit in progress was not committed. What to do: run the tap again with "
        "the last STATE to continue"
    )


def _exit_now(signum: int) -> NoReturn:
    """End the process at once with one ERROR line, without logging (its locks may be held)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
    line = f"{stamp} | ERROR    | {TAP:30s} | {_interruption_line(signum, TAP)}\n"
    os.write(2, line.encode())
    os._exit(EXIT_CODES[signal.Signals(signum)])


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if not _Run.running or _Run.interrupted is not None:
        if _Run.shield_depth:
            _Run.deferred = signum
            return
        _exit_now(signum)
    _Run.interrupted = signum
    if _Run.shield_depth:
        _Run.deferred = signum
        return
    raise Interrupted(signum)


def launched_as_cli() -> bool:
    """The process is the tap's CLI (`tap-emailtracking ...` or `python -m tap_emailtracking`)."""
    argv = getattr(sys, "orig_argv", sys.argv)
    if os.path.basename(sys.argv[0]) == TAP:
        return True
    return any(pair == ("-m", "tap_emailtracking") for pair in itertools.pairwise(argv))


def install() -> None:
    """Handle SIGINT and SIGTERM here (only the main thread may install handlers)."""
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT_CODES:
            signal.signal(signum, _on_signal)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold a signal until the block ends, so a message written to stdout is never cut."""
    _Run.shield_depth += 1
    try:
        yield
    finally:
        _Run.shield_depth -= 1
        pending, _Run.deferred = _Run.deferred, None
        if pending is not None and not _Run.shield_depth:
            if _Run.running and _Run.interrupted == pending:
                raise Interrupted(pending)
            _exit_now(pending)


def _stream_at(traceback: TracebackType | None) -> str:
    """`tap-emailtracking / <stream>` for the stream being synced when the exception came."""
    from singer_sdk import Stream  # noqa: PLC0415 - heavy, and loaded by now

    while traceback is not None:
        owner = traceback.tb_frame.f_locals.get("self")
        if isinstance(owner, Stream):
            return f"{TAP} / {owner.name}"
        traceback = traceback.tb_next
    return TAP


def _expected(exc: BaseException) -> bool:
    """Errors the user acts on from the message alone: config, credentials, vendors, files."""
    from singer_sdk.exceptions import ConfigValidationError  # noqa: PLC0415 - heavy, lazily

    from tap_emailtracking.errors import TapEmailTrackingError, UnexpectedError  # noqa: PLC0415

    if isinstance(exc, ConfigValidationError):
        return True
    return isinstance(exc, TapEmailTrackingError) and not isinstance(exc, UnexpectedError)


def config_validation_error(exc: BaseException) -> Exception:
    """The SDK's config-validation errors as one of ours, one line (redaction scrubs values)."""
    from tap_emailtracking.errors import ConfigurationError  # noqa: PLC0415

    errors = "; ".join(getattr(exc, "errors", None) or [str(exc)])
    return ConfigurationError(
        f"Config validation failed: {errors}",
        vendor=TAP,
        action=f"fix these settings (`{TAP} --about` describes every setting)",
    )


class _QuietSdkStreamError(logging.Filter):
    """Drop the SDK's generic 'unhandled error' line for an expected error (ours says more)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _SDK_STREAM_ERROR:
            return True
        error = sys.exc_info()[1]
        return error is None or not _expected(error)


def _report(exc: BaseException) -> int:
    """Log how the run ended, as the module docstring says; return the exit code."""
    if isinstance(exc, Interrupted):
        LOGGER.error("%s", _interruption_line(exc.signum, _stream_at(exc.__traceback__)))
        return exc.exit_code
    if _expected(exc):
        from tap_emailtracking.errors import TapEmailTrackingError  # noqa: PLC0415

        shown = exc if isinstance(exc, TapEmailTrackingError) else config_validation_error(exc)
        # The error's name too: the README's failure table is written in these names.
        LOGGER.error("%s [%s]", shown, type(shown).__name__)
        LOGGER.debug("Traceback of the error above", exc_info=exc)
        return FAILED
    LOGGER.error("%s: unexpected error, please report it: %r", TAP, exc, exc_info=exc)
    return FAILED


def run(main: Callable[[], Any]) -> NoReturn:
    """Run the CLI's `main` to its end and exit with the code this module promises."""
    from tap_emailtracking import summary  # noqa: PLC0415

    install()
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietSdkStreamError())
    summary.reset()
    code = 0
    _Run.running = True
    try:
        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else FAILED)
        if done.code is not None and not isinstance(done.code, int):
            LOGGER.error("%s", done.code)  # noqa: TRY400 - a message to show, not a failure
    except BaseException as exc:  # every run ends here
        code = _report(exc)
        del exc
        gc.collect()  # close the abandoned stream generators now: their `finally` blocks clean up
    finally:
        if _Run.interrupted is not None:
            code = EXIT_CODES[signal.Signals(_Run.interrupted)]
        summary.log_summary()
        _Run.running = False
    sys.exit(code)
