"""impact.com throughput and memory: the tap against a bare baseline on the same click files.

    python benchmarks/impact_throughput.py --rows 1000000 --rows 3000000 --repeat 2

For each size it starts the vendor sandbox (impact.com only) with 2 programs and enough days of
50,000 clicks per program and day to make about that many clicks (one ClickExport result file of
50,000 clicks per job at every scale, so the tap's memory must not grow with the run), then runs

* the tap (`python -m tap_emailtracking`, RECORDs to /dev/null, no reports): it lists the
  programs, schedules one ClickExport per program and day (the benchmark account allows 1,000 a
  day), polls `Jobs/{id}`, follows each `Download` 302 to its signed URL and parses the JSON, and
* a bare baseline on the very same files, read from the sandbox's results folder: `json.load`
  and `json.dumps` of every click to /dev/null,

each as its own process (`benchmarks.measure`). A first, untimed run has the sandbox write every
file; the timed runs' jobs get hard links to them (`ImpactApi.reuse_results`). The tap's click
count (its METRIC lines) and the baseline's must equal the sandbox's ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import (  # noqa: E402
    best_of,
    record_counts,
    run_tap,
    throughput_table,
    timed,
)
from vendor_sandbox.sandbox import DEFAULT_IMPACT_SPEC, Sandbox  # noqa: E402

STREAM = "impact_clicks"
PROGRAMS = 2
CLICKS_PER_DAY = 50_000

BASELINE = r"""
import json, sys
out = open("/dev/null", "w")
rows = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        page = json.load(handle)
    for click in page["Clicks"]:
        out.write(json.dumps(click) + "\n")
        rows += 1
print(rows)
"""


def bench(rows: int, workdir: Path, repeat: int) -> dict[str, float | int]:
    days = max(1, round(rows / PROGRAMS / CLICKS_PER_DAY))
    spec = replace(
        DEFAULT_IMPACT_SPEC,
        programs=PROGRAMS,
        end=DEFAULT_IMPACT_SPEC.start + timedelta(days=days),
        clicks_per_day=CLICKS_PER_DAY,
        reports=(),
    )
    box = Sandbox(
        workdir / "sandbox",
        exacttarget=None,
        acoustic=None,
        pinpointe=None,
        mailkit=None,
        impact=spec,
        impact_polls_until_complete=1,
    )
    with box:
        api = box.impact_api
        assert api is not None
        api.reuse_results = True
        api.daily_limits["ClickExport"] = 1_000
        config = box.tap_config(
            vendors=("impact",),
            impact_overrides={
                "click_exports_per_day": 1_000,
                "max_jobs_in_flight": 10,
                "request_timeout_seconds": 300,
                "job_deadline_seconds": 3600,
            },
        )
        truth = box.impact_counts()[STREAM]
        run_tap(config, workdir)  # untimed: the sandbox writes every result file once
        files = sorted({path.resolve() for path in api.files})
        file_bytes = sum(path.stat().st_size for path in files)
        taps: list[tuple[float, float]] = []
        bases: list[tuple[float, float]] = []
        for _ in range(repeat):  # alternating, so a noisy spell hits both alike
            api.advance_days(1)  # a fresh day's quota for each run
            seconds, rss, log = run_tap(config, workdir)
            got = record_counts(log).get(STREAM, 0)
            if got != truth:
                raise SystemExit(f"the tap emitted {got:,} clicks; the truth has {truth:,}")
            taps.append((seconds, rss))
            out = workdir / "baseline.out"
            with out.open("wb") as handle:
                seconds, rss, rc = timed(
                    [sys.executable, "-c", BASELINE, *map(str, files)],
                    stdout=handle.fileno(),
                    stderr=None,
                )
            base_rows = int(out.read_text(encoding="utf-8") or 0)
            if rc != 0 or base_rows != truth:
                raise SystemExit(f"the baseline read {base_rows:,} clicks; the truth has {truth:,}")
            bases.append((seconds, rss))
    (tap_seconds, tap_rss), (base_seconds, base_rss) = best_of(taps), best_of(bases)
    return {
        "rows": truth,
        "files": len(files),
        "file_mb": file_bytes / 1e6,
        "tap_seconds": tap_seconds,
        "tap_records_per_s": truth / tap_seconds,
        "tap_peak_rss_mb": tap_rss,
        "baseline_seconds": base_seconds,
        "baseline_records_per_s": truth / base_seconds,
        "baseline_peak_rss_mb": base_rss,
        "ratio": base_seconds / tap_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="approximate clicks")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs of each, alternating; the fastest kept"
    )
    args = parser.parse_args()
    results = []
    for size in args.rows or [1_000_000]:
        with tempfile.TemporaryDirectory(prefix="impact-bench-") as tmp:
            row = bench(size, Path(tmp), args.repeat)
        results.append(row)
        print(json.dumps({"requested_rows": size, **row}), flush=True)
    print()
    print(throughput_table(results, [("files", "files", "d"), ("MB", "file_mb", ",.0f")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
