#!/usr/bin/env python3
"""Every check the project has, in one command: lint, format, types, the whole test suite.

    python3 scripts/test.py            # what CI runs (.ci/run)
    python3 scripts/test.py -k flow    # extra arguments go to pytest

Creates `.venv` if it is missing, installs the project with its test tools
(`pip install -e .[test]`), then runs, with that venv's Python:

1. `ruff check .`
2. `ruff format --check .`
3. `mypy` (files and strictness come from pyproject.toml)
4. `pytest -n 2` (the whole suite in two workers, `TEST_WORKERS` to change; the tests start their
   own sandbox on free ports)

Every check runs even when an earlier one fails, so one report shows everything; pytest runs
last so its closing line ends the output. The exit code is the first non-zero one (0 when all
pass). Only the standard library is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = "Scripts" if os.name == "nt" else "bin"
EXE = ".exe" if os.name == "nt" else ""
VENV = ROOT / ".venv"
PYTHON = VENV / BIN / f"python{EXE}"


def header(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}", flush=True)


def run(cmd: list[str]) -> int:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def main(pytest_args: list[str]) -> int:
    os.chdir(ROOT)
    started = time.monotonic()
    header("Set up .venv (pip install -e .[test])")
    if not PYTHON.exists():
        code = run([sys.executable, "-m", "venv", str(VENV)])
        if code == 0:
            # The pip bundled with early 3.10 releases predates editable pyproject installs.
            code = run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        if code != 0:
            print(f"\ncould not create {VENV}", file=sys.stderr)
            return code
    code = run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", ".[test]"])
    if code != 0:
        print("\ninstalling the project with its test tools failed", file=sys.stderr)
        return code

    py = str(PYTHON)
    static_checks = [
        ("ruff check", [py, "-m", "ruff", "check", "."]),
        ("ruff format --check", [py, "-m", "ruff", "format", "--check", "."]),
        ("mypy", [py, "-m", "mypy"]),
    ]
    results: list[tuple[str, int, float]] = []
    for name, cmd in static_checks:
        header(name)
        step_started = time.monotonic()
        results.append((name, run(cmd), time.monotonic() - step_started))

    header("Static checks")
    for name, code, seconds in results:
        verdict = "ok" if code == 0 else f"FAILED (exit code {code})"
        print(f"{name:<22} {verdict:<24} {seconds:6.1f} s")

    # pytest runs last, so its own closing line ("N passed ...") is the last line of the run.
    header(f"pytest (setup and static checks took {time.monotonic() - started:.1f} s)")
    # Two workers (pytest-xdist) even on two cores: most of a test's time is a tap process
    # waiting on a sandbox server, so the suite takes about half as long.
    workers = ["-n", os.environ.get("TEST_WORKERS", "2")]
    results.append(("pytest", run([py, "-m", "pytest", *workers, *pytest_args]), 0.0))
    return next((code for _, code, _ in results if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
