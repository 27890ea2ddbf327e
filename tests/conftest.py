"""Shared fixtures: a real vendor sandbox on free ports, and running the real tap CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.exacttarget.data import ExactTargetDataSpec
from vendor_sandbox.sandbox import Sandbox, SandboxCredentials

from .expected import key

REPO = Path(__file__).resolve().parent.parent


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


def write_json(path: Path, value: Any) -> Path:  # noqa: ANN401
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def tap_command(
    workdir: Path, config: dict[str, Any], state: dict[str, Any] | None = None
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
    return command


def tap_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_EMAILTRACKING_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def run_tap(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    timeout: float = 120,
) -> TapRun:
    """Run `python -m tap_emailtracking` to completion."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        tap_command(workdir, config, state),
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
