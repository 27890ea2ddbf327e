"""Timing and peak memory of a child process, free of the harness's own memory.

Measured through a small launcher: a child forked straight from the benchmark harness inherits the
harness's memory high-water mark in `ru_maxrss` (Linux carries it across fork and exec), so a
500 MB harness would make `python -c pass` report 510 MB. The launcher is small when it forks.

The child's CPU seconds (user + system, from the same `wait4`) are reported too: on a machine other
work shares, wall-clock time swings with the load while CPU time barely moves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAUNCHER = r"""
import json, os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
elapsed = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    json.dump({"seconds": elapsed, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "maxrss_kb": usage.ru_maxrss, "rc": os.waitstatus_to_exitcode(status)}, report)
"""


@dataclass(frozen=True)
class Measured:
    """One child process: wall seconds, CPU seconds (user + system), peak RSS MB, exit code."""

    seconds: float
    cpu_seconds: float
    rss_mb: float
    rc: int


def measure(command: list[str], *, stdout: int | None, stderr: int | None) -> Measured:
    """Run a process through the launcher and measure it."""
    with tempfile.TemporaryDirectory(prefix="acoustic-bench-launch-") as tmp:
        report = Path(tmp) / "report.json"
        launcher = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(report), *command],
            stdout=stdout,
            stderr=stderr,
            check=False,
        )
        if launcher.returncode != 0 or not report.is_file():
            return Measured(0.0, 0.0, 0.0, launcher.returncode or 1)
        result = json.loads(report.read_text(encoding="utf-8"))
    return Measured(
        result["seconds"], result["cpu_seconds"], result["maxrss_kb"] / 1024, result["rc"]
    )


def timed(
    command: list[str], *, stdout: int | None, stderr: int | None
) -> tuple[float, float, int]:
    """Run a process through the launcher; return (seconds, peak RSS in MB, exit code)."""
    done = measure(command, stdout=stdout, stderr=stderr)
    return done.seconds, done.rss_mb, done.rc


def measure_tap(config: dict[str, object], workdir: Path) -> tuple[Measured, str]:
    """Run the tap CLI with RECORDs to /dev/null; return its measurements and its stderr."""
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log = workdir / "tap.log"
    with open(os.devnull, "wb") as devnull, log.open("wb") as err:
        done = measure(
            [sys.executable, "-m", "tap_emailtracking", "--config", str(config_path)],
            stdout=devnull.fileno(),
            stderr=err.fileno(),
        )
    text = log.read_text(encoding="utf-8")
    if done.rc != 0:
        # The log's folder is usually temporary: show its end, where the error is.
        tail = "\n".join(text.splitlines()[-15:])
        raise SystemExit(f"the tap failed (exit {done.rc}); the end of {log}:\n{tail}")
    return done, text


def run_tap(config: dict[str, object], workdir: Path) -> tuple[float, float, str]:
    """Run the tap CLI with RECORDs to /dev/null; return (seconds, peak RSS MB, its stderr)."""
    done, log = measure_tap(config, workdir)
    return done.seconds, done.rss_mb, log


def record_counts(log: str) -> dict[str, int]:
    """Records per stream, from the tap's own `record_count` METRIC lines."""
    counts: dict[str, int] = {}
    for match in re.finditer(r"METRIC: (\{.*\})", log):
        metric = json.loads(match.group(1))
        if metric.get("metric") == "record_count":
            stream = metric["tags"]["stream"]
            counts[stream] = counts.get(stream, 0) + int(metric["value"])
    return counts


def best_of(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest of repeated runs and the largest peak RSS of them: (seconds, MB)."""
    return min(seconds for seconds, _ in runs), max(rss for _, rss in runs)


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Rows as a Markdown table; `columns` are (header, key, format spec), numbers right-aligned."""
    header = "| " + " | ".join(title for title, _, _ in columns) + " |"
    rule = "|" + "|".join("---:" for _ in columns) + "|"
    lines = [header, rule]
    for row in rows:
        cells = [format(row[key], spec) for _, key, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def throughput_table(
    rows: list[dict[str, Any]], extra: list[tuple[str, str, str]] | None = None
) -> str:
    """The tap-against-baseline table of a throughput benchmark; `extra` columns after rows."""
    return markdown_table(
        rows,
        [
            ("rows", "rows", ",d"),
            *(extra or []),
            ("tap s", "tap_seconds", ".1f"),
            ("tap rec/s", "tap_records_per_s", ",.0f"),
            ("baseline s", "baseline_seconds", ".1f"),
            ("baseline rec/s", "baseline_records_per_s", ",.0f"),
            ("ratio", "ratio", ".2f"),
            ("tap peak RSS MB", "tap_peak_rss_mb", ".0f"),
            ("baseline peak RSS MB", "baseline_peak_rss_mb", ".0f"),
        ],
    )
