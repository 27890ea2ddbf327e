"""Shared fixtures: a real vendor sandbox on free ports, and running the real tap CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tap_emailtracking import redaction
from vendor_sandbox.exacttarget.data import ExactTargetDataSpec
from vendor_sandbox.sandbox import Sandbox, SandboxCredentials

from .expected import key

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests() -> Iterator[None]:
    """Taps built in this process register secrets process-wide; one test's must not mask the
    next test's log lines (a one-letter test password would mask that letter everywhere)."""
    yield
    redaction.forget_secrets()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh sandbox (its own data, counters and fault switches) per test."""
    with Sandbox(tmp_path / "sandbox", exacttarget=ExactTargetDataSpec()) as box:
        yield box


@pytest.fixture
def secret_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox whose credentials are distinctive strings to search output for."""
    creds = SandboxCredentials(
        et_username="et-user",
        et_password="S3cret-ET-pass&<word>",
        file_username="files-user",
        file_password="S3cret-FILE-pass",
    )
    with Sandbox(tmp_path / "sandbox", credentials=creds) as box:
        yield box


@dataclass
class TapRun:
    """One run of the tap CLI: exit code, parsed messages, raw output."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for message in self.messages:
            if message["type"] == "RECORD":
                out.setdefault(message["stream"], []).append(message["record"])
        return out

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict[str, Any] | None:
        states = self.states
        return states[-1] if states else None


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def tap_command(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "tap_emailtracking",
        "--config",
        str(write_json(workdir / "config.json", config)),
    ]
    if state is not None:
        command += ["--state", str(write_json(workdir / "state.json", state))]
    if catalog is not None:
        command += ["--catalog", str(write_json(workdir / "catalog.json", catalog))]
    return command


def tap_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_EMAILTRACKING_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def discover(workdir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The catalog `--discover` prints."""
    workdir.mkdir(parents=True, exist_ok=True)
    found = subprocess.run(
        [*tap_command(workdir, config), "--discover"],
        capture_output=True,
        text=True,
        check=True,
        env=tap_env(),
    )
    catalog: dict[str, Any] = json.loads(found.stdout)
    return catalog


def set_selected(
    catalog: dict[str, Any], breadcrumb: list[str], selected: Callable[[str], bool]
) -> None:
    """Set `selected` on every stream's metadata at `breadcrumb`, by the stream's id."""
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == breadcrumb:
                meta["metadata"]["selected"] = selected(entry["tap_stream_id"])


def run_tap(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    catalog: dict[str, Any] | None = None,
    timeout: float = 120,
) -> TapRun:
    """Run `python -m tap_emailtracking` to completion."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        tap_command(workdir, config, state, catalog),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=tap_env(),
        check=False,
    )
    return TapRun(done.returncode, done.stdout, done.stderr, parse_messages(done.stdout))


def dedup(stream: str, records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """What a target that upserts on the primary key holds after loading `records`."""
    return {key(stream, r): r for r in records}


def run_tap_until(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    stop_on_message: Callable[[dict[str, Any], list[dict[str, Any]]], bool] | None = None,
    stop_on_log: Callable[[str], bool] | None = None,
    timeout: float = 60,
) -> TapRun:
    """Run the tap CLI and SIGKILL it at a chosen point, like a crash or an OOM kill.

    `stop_on_message(message, messages_so_far)` is asked about each stdout message in order; once
    it answers True stdout is read no further, so `messages` is exactly what a target had received
    when the tap died (the messages up to and including that one). `stop_on_log(line)` is asked
    about each stderr line; once it answers True the tap is killed and stdout is read to its end
    (everything the tap wrote before it died). The reader that sees the stop point sends the
    signal itself, at once. The test fails if the tap ended by itself before the stop point,
    because a kill after the fact would prove nothing.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_lines: list[str] = []
    stderr_lines: list[str] = []
    messages: list[dict[str, Any]] = []
    problems: list[BaseException] = []
    killed: list[bool] = []  # [alive when the stop point came]
    lock = threading.Lock()

    with subprocess.Popen(
        tap_command(workdir, config, state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=tap_env(),
    ) as process:

        def kill() -> None:
            with lock:
                if not killed:
                    killed.append(process.poll() is None)
                    if killed[0]:
                        process.send_signal(signal.SIGKILL)

        def read_stdout(pipe: IO[str]) -> None:
            try:
                for line in pipe:
                    if not line.strip():
                        continue
                    if not line.endswith("\n") and killed:
                        break  # cut off by the kill: a line-reading target never sees it whole
                    stdout_lines.append(line)
                    messages.append(json.loads(line))
                    if stop_on_message is not None and stop_on_message(messages[-1], messages):
                        kill()
                        return
            except BaseException as exc:
                problems.append(exc)

        def read_stderr(pipe: IO[str]) -> None:
            try:
                for line in pipe:
                    stderr_lines.append(line)
                    if stop_on_log is not None and not killed and stop_on_log(line):
                        kill()
            except BaseException as exc:
                problems.append(exc)

        assert process.stdout is not None
        assert process.stderr is not None
        readers = [
            threading.Thread(target=read_stdout, args=(process.stdout,), daemon=True),
            threading.Thread(target=read_stderr, args=(process.stderr,), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=30)
    assert not problems, problems
    output = "".join(stderr_lines)
    assert killed, f"the stop point never came (exit {process.returncode}): {output[-3000:]}"
    assert killed[0], f"the tap had already ended (exit {process.returncode}): {output[-3000:]}"
    return TapRun(process.returncode, "".join(stdout_lines), output, messages)
