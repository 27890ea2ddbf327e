"""SIGTERM and SIGINT end the real tap CLI with 143 / 130, one ERROR line and honest STATE.

Schedulers read only the exit code: an interrupted run must never look like a success. The signal
is sent at a point the tap's own log shows (a batch being polled, a ZIP being downloaded), the
output up to the tap's exit is what a target would have received, and one more run from its last
STATE must complete the sandbox's ground truth exactly. A signal during startup (importing, reading
the config) must give the same exit codes, not a traceback and not 0.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from tap_emailtracking import cli, summary
from tap_emailtracking.errors import CorruptFileError
from vendor_sandbox.acoustic.data import AcousticDataSpec
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, parse_messages, run_tap, tap_command, tap_env
from .test_acoustic_flow import STREAM as ACOUSTIC
from .test_acoustic_flow import assert_matches_truth as assert_acoustic_truth
from .test_acoustic_flow import config as acoustic_config
from .test_exacttarget_flow import STREAMS, assert_matches_truth
from .test_exacttarget_resume import (
    BATCHES,
    END_BOOKMARK,
    assert_each_window_submitted_once,
    assert_state_never_ahead,
    bookmark,
    config_for,
    in_flight_windows,
    ledger_of,
    record_count,
)

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


def run_tap_signalled(
    workdir: Path,
    config: dict[str, Any],
    signum: signal.Signals,
    stop_on_log: Callable[[str], bool],
    state: dict[str, Any] | None = None,
    timeout: float = 60,
) -> TapRun:
    """Run the tap CLI, send `signum` once a stderr line matches, and let it end by itself."""
    workdir.mkdir(parents=True, exist_ok=True)
    sent: list[bool] = []  # [alive when the signal was sent]
    stderr_lines: list[str] = []
    with subprocess.Popen(
        tap_command(workdir, config, state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=tap_env(),
    ) as process:

        def read_stderr(pipe: IO[str]) -> None:
            for line in pipe:
                stderr_lines.append(line)
                if not sent and stop_on_log(line):
                    sent.append(process.poll() is None)
                    process.send_signal(signum)

        assert process.stderr is not None
        assert process.stdout is not None
        reader = threading.Thread(target=read_stderr, args=(process.stderr,), daemon=True)
        reader.start()
        # Not communicate(): it would read stderr too, racing the reader for the log lines.
        stdout = process.stdout.read()
        process.wait(timeout=timeout)
        reader.join(timeout=30)
    stderr = "".join(stderr_lines)
    assert sent == [True], f"the signal was not sent to a running tap: {stderr[-3000:]}"
    return TapRun(process.returncode, stdout, stderr, parse_messages(stdout))


def error_lines(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| ERROR " in line]


def assert_interrupted(run: TapRun, signum: signal.Signals, where: str) -> None:
    """Exit 130/143, exactly one ERROR line saying what to do, no traceback."""
    assert run.returncode == EXIT[signum], run.stderr[-3000:]
    errors = error_lines(run)
    assert len(errors) == 1, errors
    assert f"{where}: interrupted by {signum.name}" in errors[0]
    assert "run the tap again with the last STATE to continue" in errors[0]
    assert "Traceback" not in run.stderr
    assert "Gracefully shutting down" not in run.stderr


def resume_to_truth(
    sandbox: Sandbox, tmp_path: Path, stopped: TapRun, config: dict[str, Any]
) -> None:
    """One run from the last STATE completes the ground truth; no STATE was ever ahead."""
    in_flight = in_flight_windows(stopped.last_state)
    first_request = len(sandbox.et_api.requests)
    again = run_tap(tmp_path / "resumed", config, stopped.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_matches_truth(sandbox, stopped, again)
    assert_state_never_ahead(sandbox, stopped, again)
    submitted = [
        r["daterange"]
        for r in sandbox.et_api.requests[first_request:]
        if r["action"] == "BulkAsync"
    ]
    for window in in_flight:
        assert window not in submitted, f"in-flight window {window} was submitted again"
    assert_each_window_submitted_once(sandbox)
    final = again.last_state
    assert final is not None
    assert ledger_of(final) == {}
    for stream in STREAMS:
        assert bookmark(final, stream) == END_BOOKMARK, stream


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_polling_keeps_the_batch_and_exits_non_zero(
    sandbox: Sandbox, tmp_path: Path, signum: signal.Signals
) -> None:
    sandbox.et_api.faults.never_completes = True
    config = config_for(sandbox, tmp_path)
    stopped = run_tap_signalled(
        tmp_path / "stopped",
        config,
        signum,
        lambda line: re.search(r"is Processing \(poll [3-9]", line) is not None,
    )
    assert_interrupted(stopped, signum, "tap-emailtracking / exacttarget_bounces")
    assert record_count(stopped.messages) == 0
    assert in_flight_windows(stopped.last_state) == BATCHES  # all submitted at the start
    # The run's temporary files went with it.
    assert not list((tmp_path / "tap-tmp").iterdir())

    sandbox.et_api.faults.never_completes = False
    resume_to_truth(sandbox, tmp_path, stopped, config)
    assert sandbox.et_api.submissions == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_sync_commits_nothing_ahead_and_resumes_exactly(
    sandbox: Sandbox, tmp_path: Path, signum: signal.Signals
) -> None:
    """Signalled as the second window's ZIP downloads: window 1 is committed, window 2 is not."""
    config = config_for(sandbox, tmp_path)
    downloads: list[str] = []

    def second_download(line: str) -> bool:
        if re.search(r": downloading \S+\.zip from ", line):
            downloads.append(line)
        return len(downloads) == 2

    stopped = run_tap_signalled(tmp_path / "stopped", config, signum, second_download)
    assert_interrupted(stopped, signum, "tap-emailtracking / exacttarget_bounces")
    assert stopped.messages, "nothing was emitted before the signal"
    # The last message is whole JSON (parsed above) and the STATE covers only window 1 or 2.
    assert bookmark(stopped.last_state, "exacttarget_bounces") in {"2024-01-08", "2024-01-15"}
    resume_to_truth(sandbox, tmp_path, stopped, config)


SIGNAL_ON_IMPORT = """
import os, signal, sys

class SignalOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "singer_sdk":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.{name})
        return None

sys.meta_path.insert(0, SignalOnImport())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_tap_imports_exits_130_or_143(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The signal arrives exactly while the tap imports the SDK (a sitecustomize import hook)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SIGNAL_ON_IMPORT.replace("{name}", signum.name))
    env = tap_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env["PYTHONPATH"]])
    done = subprocess.run(
        [sys.executable, "-m", "tap_emailtracking", "--config", "{}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    run = TapRun(done.returncode, done.stdout, done.stderr, [])
    assert_interrupted(run, signum, "tap-emailtracking")
    assert run.stdout == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_tap_reads_its_config_exits_130_or_143(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The config is a FIFO: the tap blocks reading it until the signal comes."""
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    # Opening the writing end returns only once the tap has opened the reading end; the tap then
    # waits for the config's bytes, which never come.
    with (
        subprocess.Popen(
            [sys.executable, "-m", "tap_emailtracking", "--config", str(fifo)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=tap_env(),
        ) as process,
        open(fifo, "w", encoding="utf-8"),
    ):
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    run = TapRun(process.returncode, stdout, stderr, [])
    assert_interrupted(run, signum, "tap-emailtracking")
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("ending", "code"),
    [
        (None, 0),
        (CorruptFileError("bad ZIP", vendor="Acoustic", action="re-run"), 1),
        (cli.Interrupted(signal.SIGTERM), 143),
    ],
)
def test_the_summary_is_logged_however_the_run_ends(
    caplog: pytest.LogCaptureFixture, ending: BaseException | None, code: int
) -> None:
    """`cli.run` resets the counts first and logs them last, then exits with the run's code."""
    summary.note("Acoustic", "stale rows from before", 5)
    handlers = {signum: signal.getsignal(signum) for signum in EXIT}

    def main() -> None:
        summary.note("Acoustic", "malformed rows skipped", 2)
        if ending is not None:
            raise ending

    try:
        with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exited:
            cli.run(main)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        cli._Run.interrupted = None
    assert exited.value.code == code
    lines = [r.getMessage() for r in caplog.records if r.name == "tap_emailtracking.summary"]
    assert lines == ["Acoustic: end-of-run summary: 2 malformed rows skipped"]


@pytest.mark.parametrize("ending", [None, CorruptFileError("bad", vendor="X", action="re-run")])
def test_the_run_collects_garbage_rarely_and_restores_the_collector_after(
    ending: BaseException | None,
) -> None:
    """A run scans for cycles every `GC_THRESHOLD` allocations, imports frozen (speed); the
    collector is as it was once the run ends, however it ends."""
    before = gc.get_threshold()
    during: list[tuple[tuple[int, int, int], int]] = []
    handlers = {signum: signal.getsignal(signum) for signum in EXIT}

    def main() -> None:
        during.append((gc.get_threshold(), gc.get_freeze_count()))
        if ending is not None:
            raise ending

    try:
        with pytest.raises(SystemExit):
            cli.run(main)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        cli._Run.interrupted = None
    [(threshold, frozen)] = during
    assert threshold == (cli.GC_THRESHOLD, *before[1:])
    assert before[0] < cli.GC_THRESHOLD
    assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_sigterm_in_the_middle_of_the_bex_files_resumes_from_the_last_finished_file(
    tmp_path: Path,
) -> None:
    """Acoustic BEX: signalled as the fifth file downloads; only finished files are marked."""
    with Sandbox(tmp_path / "sandbox", exacttarget=None, acoustic=AcousticDataSpec()) as box:
        config = acoustic_config(box)
        downloads: list[str] = []

        def fifth_download(line: str) -> bool:
            if re.search(r": downloading .+\.csv from ", line):
                downloads.append(line)
            return len(downloads) == 5

        stopped = run_tap_signalled(tmp_path / "stopped", config, signal.SIGTERM, fifth_download)
        assert_interrupted(stopped, signal.SIGTERM, "tap-emailtracking / acoustic_email_events")
        state = stopped.last_state or {}
        marker = state.get("bookmarks", {}).get(ACOUSTIC, {}).get("bex_files", {})
        done = set(marker.get("done", {}))
        assert 4 <= len(done) <= 5, sorted(done)
        # Every file marked done had all its rows out before the STATE that marked it.
        emitted: set[str] = set()
        for message in stopped.messages:
            if message["type"] == "RECORD":
                emitted.add(message["record"]["source_file"])
            elif message["type"] == "STATE":
                marked = message["value"].get("bookmarks", {}).get(ACOUSTIC, {})
                assert set(marked.get("bex_files", {}).get("done", {})) <= emitted
        resumed = run_tap(tmp_path / "resumed", config, state=state)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert not {r["source_file"] for r in resumed.records[ACOUSTIC]} & done
        assert_acoustic_truth(box, stopped, resumed)


def wait_until_blocked_writing(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the tap's main thread sleeps in a write to its full stdout pipe."""
    deadline = time.monotonic() + timeout
    wchan = Path(f"/proc/{process.pid}/wchan")
    while "pipe_write" not in wchan.read_text(encoding="utf-8"):
        assert process.poll() is None, "the tap ended before its output filled the pipe"
        assert time.monotonic() < deadline, "the tap never blocked writing its output"
        time.sleep(0.05)


def wait_for_held_signal(process: subprocess.Popen[bytes], stderr: Path, count: int) -> None:
    """Wait until the tap has taken `count` signals (a second sent earlier would merge)."""
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        if stderr.read_text(encoding="utf-8").count("received while writing output") >= count:
            return
        time.sleep(0.05)


def unread_output_run(
    workdir: Path, config: dict[str, Any], env: dict[str, str], signals: list[signal.Signals]
) -> tuple[TapRun, float]:
    """Run the tap with stdout never read; once it blocks writing, send `signals` in turn.

    Returns the run (complete output lines only: the last one may be cut) and the seconds from
    the first signal to the exit.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        (workdir / "stderr").open("wb") as stderr,
        subprocess.Popen(
            tap_command(workdir, config), stdout=subprocess.PIPE, stderr=stderr, env=env
        ) as process,
    ):
        assert process.stdout is not None
        wait_until_blocked_writing(process)
        started = time.monotonic()
        for count, signum in enumerate(signals, start=1):
            process.send_signal(signum)
            wait_for_held_signal(process, workdir / "stderr", count)
        process.wait(timeout=30)
        took = time.monotonic() - started
        stdout = process.stdout.read().decode("utf-8")
    whole = stdout[: stdout.rfind("\n") + 1]
    err = (workdir / "stderr").read_text(encoding="utf-8")
    return TapRun(process.returncode, whole, err, parse_messages(whole)), took


def test_a_second_sigterm_ends_a_run_blocked_on_a_target_that_stopped_reading(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The first signal is held for the blocked write; the second ends the process at once."""
    config = config_for(sandbox, tmp_path)
    stopped, took = unread_output_run(
        tmp_path / "stopped", config, tap_env(), [signal.SIGTERM, signal.SIGTERM]
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert took < cli.WRITE_GRACE_SECONDS  # the second signal, not the grace, ended it
    assert_interrupted(stopped, signal.SIGTERM, "tap-emailtracking")
    assert stopped.messages, "nothing was written before the pipe filled"
    resume_to_truth(sandbox, tmp_path, stopped, config)


SHORT_GRACE = """
import tap_emailtracking.cli
tap_emailtracking.cli.WRITE_GRACE_SECONDS = {grace}
"""


def test_a_single_sigterm_ends_a_blocked_write_after_the_grace(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A write still blocked when the grace is over ends the process (the grace set to 1 s)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SHORT_GRACE.format(grace=1.0))
    env = tap_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env["PYTHONPATH"]])
    config = config_for(sandbox, tmp_path)
    stopped, took = unread_output_run(tmp_path / "stopped", config, env, [signal.SIGTERM])
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert 1.0 <= took < 10, took
    assert_interrupted(stopped, signal.SIGTERM, "tap-emailtracking")
    resume_to_truth(sandbox, tmp_path, stopped, config)


def test_a_signal_while_sftp_connects_is_one_error_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """paramiko's thread sees its connection torn down; it must not log that as errors."""
    config = config_for(sandbox, tmp_path)
    stopped = run_tap_signalled(
        tmp_path / "stopped",
        config,
        signal.SIGTERM,
        lambda line: "paramiko.transport" in line and "Connected (version" in line,
    )
    assert_interrupted(stopped, signal.SIGTERM, "tap-emailtracking / exacttarget_bounces")
    resume_to_truth(sandbox, tmp_path, stopped, config)


def test_a_target_that_stops_reading_is_one_line_and_exit_141(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The reader closes the pipe after the first bytes: a broken pipe, named as the target's."""
    config = config_for(sandbox, tmp_path)
    workdir = tmp_path / "run"
    workdir.mkdir()
    with subprocess.Popen(
        tap_command(workdir, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tap_env()
    ) as process:
        assert process.stdout is not None
        received = process.stdout.read(3000).decode("utf-8")
        process.stdout.close()
        _, stderr_bytes = process.communicate(timeout=60)
    stderr = stderr_bytes.decode("utf-8")
    assert process.returncode == cli.BROKEN_PIPE == 141, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "| ERROR " in line]
    assert len(errors) == 1, errors
    assert "the target stopped reading the tap's output (broken pipe)" in errors[0]
    assert "check the target's log" in errors[0]
    assert "Traceback" not in stderr
    assert "An unhandled error occurred" not in stderr
    assert '"type":"SCHEMA"' in received.replace(" ", "")


def test_an_interruption_silences_the_loggers_of_background_threads() -> None:
    """paramiko's own thread logs a torn-down connect as ERROR lines: quiet once interrupted."""
    import tap_emailtracking.transports.sftp  # noqa: F401, PLC0415 - registers paramiko

    quiet = logging.getLogger("paramiko.transport")
    levels = {name: logging.getLogger(name).level for name in cli.QUIET_WHEN_INTERRUPTED}
    cli._Run.running = True
    try:
        with pytest.raises(cli.Interrupted):
            cli._on_signal(signal.SIGTERM, None)
        assert not quiet.isEnabledFor(logging.CRITICAL)
    finally:
        cli._Run.running = False
        cli._Run.interrupted = None
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert "paramiko" in cli.QUIET_WHEN_INTERRUPTED
