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
* A second signal while the first is held or unwinds ends the process at once (STATE is
  already honest). A held signal also ends the process once `WRITE_GRACE_SECONDS` pass with
  the write still blocked (a target that stopped reading): a cut last line is better than a
  tap that only SIGKILL ends. A target already fails on the cut line, and the STATE before it
  is whole.
* Once interrupted, the loggers of libraries that work in background threads (paramiko) go
  quiet: their threads see the connection torn down and would log it as a failure.

The target closing its end of the pipe (it stopped or crashed) is one ERROR line and exit
`BROKEN_PIPE` (141, the shell's code for a process ended by SIGPIPE), so a scheduler tells it
from a failure of the tap. A config, state or catalog file that cannot be read or is not JSON
is a `ConfigurationError` naming the option, the file, and the line and column.

Expected errors (`TapEmailTrackingError` except `UnexpectedError`, and the SDK's config
validation) are one ERROR line ending in the error's name; their traceback goes to the debug log.
Anything else keeps its traceback. Both exit 1.
"""

from __future__ import annotations

import gc
import itertools
import linecache
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, NoReturn

from typing_extensions import override

LOGGER = logging.getLogger("tap-emailtracking")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
FAILED = 1
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away
# How long a held signal waits for a blocked write to stdout before the process ends anyway.
WRITE_GRACE_SECONDS = 10.0
# Allocations between two young-generation collections during a run (Python's default is 700).
GC_THRESHOLD = 100_000
# Loggers silenced once the run is interrupted (their threads log the teardown as errors).
QUIET_WHEN_INTERRUPTED: set[str] = set()
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
    stdout_broken = False  # a write inside `shielded()` met a broken pipe


def _interruption_line(signum: int, where: str) -> str:
    name = signal.Signals(signum).name
    return (
        f"{where}: interrupted by {name}. STATE holds every unit of work (window, file) finished "
        "before it; the unit in progress was not committed. What to do: run the tap again with "
        "the last STATE to continue"
    )


def _write_line(level: str, message: str) -> None:
    """One log-formatted line straight to stderr, without logging (its locks may be held)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
    os.write(2, f"{stamp} | {level:8s} | {TAP:30s} | {message}\n".encode())


def _exit_now(signum: int) -> NoReturn:
    """End the process at once with one ERROR line."""
    _write_line("ERROR", _interruption_line(signum, TAP))
    os._exit(EXIT_CODES[signal.Signals(signum)])


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _Run.deferred is not None or (_Run.running and _Run.interrupted is not None):
        _exit_now(signum)  # a second signal: the first is held or unwinding
    if not _Run.running and not _Run.shield_depth:
        _exit_now(signum)
    if _Run.running:
        _Run.interrupted = signum
        _quiet_background_loggers()
    if _Run.shield_depth:
        _Run.deferred = signum
        signal.signal(signal.SIGALRM, _on_write_grace_over)
        signal.setitimer(signal.ITIMER_REAL, WRITE_GRACE_SECONDS)
        _write_line(
            "WARNING",
            f"{TAP}: {signal.Signals(signum).name} received while writing output; the run ends "
            f"once the write is out (at most {WRITE_GRACE_SECONDS:g} s; a target that stopped "
            "reading blocks it). Send the signal again to end the run at once",
        )
        return
    raise Interrupted(signum)


def _on_write_grace_over(_signum: int, _frame: FrameType | None) -> None:
    """The held signal's write is still blocked after the grace: end now (module docs)."""
    if _Run.deferred is not None:
        _exit_now(_Run.deferred)


def _quiet_background_loggers() -> None:
    for name in QUIET_WHEN_INTERRUPTED:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def quiet_when_interrupted(logger_name: str) -> None:
    """Silence `logger_name` (and its children) once the run is interrupted (module docs)."""
    QUIET_WHEN_INTERRUPTED.add(logger_name)


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
    except BrokenPipeError:
        _Run.stdout_broken = True
        raise
    finally:
        _Run.shield_depth -= 1
        pending = None if _Run.shield_depth else _Run.deferred
        if pending is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)  # the write finished within its grace
            _Run.deferred = None
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


def _target_gone(exc: BaseException) -> bool:
    """Output met a broken pipe, or `exc` came from one while stdout's reader is gone."""
    if _Run.stdout_broken:
        return True
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, BrokenPipeError):
            break
        seen = seen.__cause__ or seen.__context__
    return isinstance(seen, BrokenPipeError) and _reader_closed()


def _reader_closed() -> bool:
    """Stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno() if sys.__stdout__ else 1, select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _broken_pipe_error() -> Exception:
    from tap_emailtracking.errors import TapEmailTrackingError  # noqa: PLC0415

    return TapEmailTrackingError(
        "the target stopped reading the tap's output (broken pipe); STATE holds every unit "
        "finished before it",
        vendor=TAP,
        action="check the target's log for why it stopped, then run the tap again with the "
        "last STATE the target saved",
    )


def _read_by_sdk(traceback: TracebackType | None) -> tuple[str, str] | None:
    """(option, path) of the JSON file the SDK was reading when the exception came, if any.

    `--config` files are read by `read_json_file(path)`; `--state` and `--catalog` are opened by
    click and parsed inside `Tap.invoke`, whose source line says which of the two it was.
    """
    found = None
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name == "read_json_file" and frame.f_locals.get("path") is not None:
            found = (_option_for(str(frame.f_locals["path"])), str(frame.f_locals["path"]))
        elif frame.f_code.co_name == "invoke" and traceback.tb_next is not None:
            called = traceback.tb_next.tb_frame.f_code.co_name
            line = linecache.getline(frame.f_code.co_filename, traceback.tb_lineno)
            for option in ("state", "catalog"):
                opened = frame.f_locals.get(option)
                if called == "load_json" and f"{option}=" in line and opened is not None:
                    found = (f"--{option}", str(getattr(opened, "name", option)))
        traceback = traceback.tb_next
    return found


def _option_for(path: str) -> str:
    """Which of `--config` options named `path` (the flag, or `input` if none did)."""
    args = sys.argv[1:]
    if f"--config={path}" in args or ("--config", path) in itertools.pairwise(args):
        return "--config"
    return "input"


def unreadable_input_error(exc: BaseException) -> Exception | None:
    """A config, state or catalog file that is missing, unreadable or not JSON, as one line."""
    from tap_emailtracking.errors import ConfigurationError  # noqa: PLC0415

    read = _read_by_sdk(exc.__traceback__)
    if read is None or not isinstance(exc, OSError | ValueError):
        return None
    option, path = read
    if isinstance(exc, FileNotFoundError):
        what, action = "does not exist", f"check the path given to {option}"
    elif isinstance(exc, OSError):
        what = f"cannot be read ({exc.strerror or type(exc).__name__})"
        action = f"check the path given to {option} and that the tap's user may read it"
    elif isinstance(exc, UnicodeDecodeError):
        what = f"is not UTF-8 text (byte {exc.start})"
        action = "save the file as UTF-8 JSON"
    else:
        where = f" at line {getattr(exc, 'lineno', '?')} column {getattr(exc, 'colno', '?')}"
        what = f"is not valid JSON: {getattr(exc, 'msg', exc)}{where}"
        action = "correct the file there (JSON allows no trailing comma, comment, NaN or Infinity)"
    return ConfigurationError(f"the {option} file {path!r} {what}", vendor=TAP, action=action)


class _QuietSdkStreamError(logging.Filter):
    """Drop the SDK's generic 'unhandled error' line for an error we report in one line."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _SDK_STREAM_ERROR:
            return True
        error = sys.exc_info()[1]
        return error is None or not (_expected(error) or _target_gone(error))


def _report_broken_pipe(exc: BaseException) -> int:
    LOGGER.error("%s [BrokenPipeError]", _broken_pipe_error())
    LOGGER.debug("Traceback of the error above", exc_info=exc)
    # Nothing more can reach the target; without this, Python's last flush of stdout at exit
    # would print its own BrokenPipeError.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return BROKEN_PIPE


def _report(exc: BaseException) -> int:
    """Log how the run ended, as the module docstring says; return the exit code."""
    if isinstance(exc, Interrupted):
        LOGGER.error("%s", _interruption_line(exc.signum, _stream_at(exc.__traceback__)))
        return exc.exit_code
    if _target_gone(exc):
        return _report_broken_pipe(exc)
    exc = unreadable_input_error(exc) or exc
    if _expected(exc):
        from tap_emailtracking.errors import TapEmailTrackingError  # noqa: PLC0415

        shown = exc if isinstance(exc, TapEmailTrackingError) else config_validation_error(exc)
        # The error's name too: the README's failure table is written in these names.
        LOGGER.error("%s [%s]", shown, type(shown).__name__)
        LOGGER.debug("Traceback of the error above", exc_info=exc)
        return FAILED
    LOGGER.error("%s: unexpected error, please report it: %r", TAP, exc, exc_info=exc)
    return FAILED


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Tune the cyclic garbage collector for a run that makes millions of short-lived objects.

    With the default threshold (a collection every 700 allocations) a parse's XML elements and
    records are scanned while still alive, again and again: a quarter of a sync's time. Almost
    none of them are in a cycle, so reference counting frees them anyway; rarer collections
    scan fewer of them. What was imported before the run lives for the whole run: `freeze`
    takes it out of every collection. Both are undone when the run ends (tests run in-process).
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


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
        with fewer_collections():
            main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else FAILED)
        if done.code is not None and not isinstance(done.code, int):
            LOGGER.error("%s", done.code)  # noqa: TRY400 - a message to show, not a failure
        # click ends a broken pipe with a silent exit(1), the BrokenPipeError out of reach.
        if code and (_Run.stdout_broken or _reader_closed()):
            code = _report_broken_pipe(done)
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
