"""Timing and peak memory of a child process, free of the harness's own memory.

Measured through a small launcher: a child forked straight from the benchmark harness inherits the
harness's memory high-water mark in `ru_maxrss` (Linux carries it across fork and exec), so a
500 MB harness would make `python -c pass` report 510 MB. The launcher is small when it forks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

LAUNCHER = r"""
import json, os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
elapsed = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    json.dump({"seconds": elapsed, "maxrss_kb": usage.ru_maxrss,
               "rc": os.waitstatus_to_exitcode(status)}, report)
"""


def timed(
    command: list[str], *, stdout: int | None, stderr: int | None
) -> tuple[float, float, int]:
    """Run a process through the launcher; return (seconds, peak RSS in MB, exit code)."""
    with tempfile.TemporaryDirectory(prefix="acoustic-bench-launch-") as tmp:
        report = Path(tmp) / "report.json"
        launcher = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(report), *command],
            stdout=stdout,
            stderr=stderr,
            check=False,
        )
        if launcher.returncode != 0 or not report.is_file():
            return 0.0, 0.0, launcher.returncode or 1
        result = json.loads(report.read_text(encoding="utf-8"))
    return result["seconds"], result["maxrss_kb"] / 1024, result["rc"]
