"""ExactTarget throughput and memory: the tap against a bare baseline on the same files, one run.

    python benchmarks/exacttarget_throughput.py --events 1000000 --events 3000000

For each size it starts the vendor sandbox with a generated export of about that many events,
writes each window's ZIP ahead of time (so the sandbox's generator is not timed), then runs

* the tap (`python -m tap_emailtracking`, every stream selected, RECORDs to /dev/null), and
* a bare baseline on the very same ZIP files: unzip + `ElementTree.iterparse` with clearing +
  `json.dumps` of every event to /dev/null,

each as its own process, timing wall clock and CPU (user + system) and reading peak RSS from the
kernel (wait4, through the small launcher in measure.py so the harness's own memory is not
counted). The tap's record counts are read from its own METRIC lines and checked against the
sandbox's ground truth. Both run in the same invocation, so the ratio holds on a noisy machine;
the CPU ratio holds even when other work competes for the cores (the wall-clock ratio then swings
with whichever of the two met more of it). `--repeat N` runs both N times, alternating, and keeps
each one's fastest run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import Measured, measure, measure_tap, record_counts  # noqa: E402
from vendor_sandbox.exacttarget.data import EVENT_KINDS, ExactTargetDataset  # noqa: E402
from vendor_sandbox.sandbox import Sandbox  # noqa: E402

BASELINE = r"""
import json, sys, zipfile
from xml.etree.ElementTree import iterparse
EVENTS = {"opendate", "click", "undeliverable", "unsubscribe", "surveyResponse", "conversion"}
out = open("/dev/null", "w")
count = 0
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            member, job, subscriber = None, None, None
            for _, element in iterparse(archive.open(name), events=("end",)):
                tag = element.tag
                if tag in EVENTS:
                    if len(element) or element.text:
                        fields = {child.tag: child.text for child in element} or {tag: element.text}
                        out.write(json.dumps({"member": member, "job": job,
                                              "subscriber": subscriber, **fields}) + "\n")
                        count += 1
                elif tag == "subscriberID":
                    subscriber = element.text
                elif tag == "jobID":
                    job = element.text
                elif tag == "memberID":
                    member = element.text
                elif tag in ("subscriber", "job"):
                    element.clear()
print(count)
"""


def windows(start: date, end: date, days: int = 7) -> list[tuple[date, date]]:
    out = []
    while start <= end:
        last = min(start + timedelta(days=days - 1), end)
        out.append((start, last))
        start = last + timedelta(days=1)
    return out


def fastest(runs: list[Measured]) -> Measured:
    """The run with the least wall time, with the least CPU time of all runs."""
    best = min(runs, key=lambda run: run.seconds)
    return Measured(best.seconds, min(r.cpu_seconds for r in runs), best.rss_mb, best.rc)


def bench(events: int, workdir: Path, repeat: int = 1) -> dict[str, float | int]:
    dataset = ExactTargetDataset.sized(events)
    with Sandbox(workdir / "sandbox", exacttarget=dataset.spec, inquiries_until_complete=1) as box:
        lookback = box.SEND_LOOKBACK_DAYS
        zips = [
            box.et_api.prebuild(window, (window[0] - timedelta(days=lookback), window[1]))
            for window in windows(dataset.spec.start, dataset.spec.end)
        ]
        truth = box.ground_truth_counts()
        config = box.tap_config("sftp", request_timeout_seconds=300)
        tap_runs: list[Measured] = []
        base_runs: list[Measured] = []
        for _ in range(repeat):
            tap_run, log = measure_tap(config, workdir)
            tap_runs.append(tap_run)
            counts = record_counts(log)
            missing = {s: (counts.get(s, 0), n) for s, n in truth.items() if counts.get(s, 0) < n}
            if missing:
                raise SystemExit(f"the tap emitted fewer records than the ground truth: {missing}")
            base_out = workdir / "baseline.out"
            with base_out.open("wb") as out:
                base_run = measure(
                    [sys.executable, "-c", BASELINE, *map(str, zips)],
                    stdout=out.fileno(),
                    stderr=None,
                )
            if base_run.rc != 0:
                raise SystemExit("the baseline failed")
            base_runs.append(base_run)
            base_events = int(base_out.read_text().strip())
    tap, base = fastest(tap_runs), fastest(base_runs)
    tap_records = sum(counts.values())
    tap_events = sum(counts.get(f"exacttarget_{k}", 0) for k in EVENT_KINDS)
    return {
        "events": tap_events,
        "tap_records": tap_records,
        "tap_seconds": tap.seconds,
        "tap_cpu_seconds": tap.cpu_seconds,
        "tap_records_per_s": tap_records / tap.seconds,
        "tap_events_per_s": tap_events / tap.seconds,
        "tap_peak_rss_mb": tap.rss_mb,
        "baseline_events": base_events,
        "baseline_seconds": base.seconds,
        "baseline_cpu_seconds": base.cpu_seconds,
        "baseline_records_per_s": base_events / base.seconds,
        "baseline_peak_rss_mb": base.rss_mb,
        "ratio_records": (tap_records / tap.seconds) / (base_events / base.seconds),
        "ratio_events": (tap_events / tap.seconds) / (base_events / base.seconds),
        "cpu_ratio_records": (tap_records / tap.cpu_seconds) / (base_events / base.cpu_seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, action="append", help="approximate events")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each, alternating; the fastest is kept"
    )
    args = parser.parse_args()
    sizes = args.events or [1_000_000]
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="et-bench-") as tmp:
            row = bench(size, Path(tmp), args.repeat)
        rows.append(row)
        print(json.dumps({"requested_events": size, **row}), flush=True)
    print()
    print(
        "| events | tap records | tap s | tap rec/s | baseline s | baseline rec/s | ratio "
        "(rec/s) | ratio (events/s) | CPU ratio (rec/CPU s) | tap peak RSS MB "
        "| baseline peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['events']:,} | {row['tap_records']:,} | {row['tap_seconds']:.1f} "
            f"| {row['tap_records_per_s']:,.0f} | {row['baseline_seconds']:.1f} "
            f"| {row['baseline_records_per_s']:,.0f} | {row['ratio_records']:.2f} "
            f"| {row['ratio_events']:.2f} | {row['cpu_ratio_records']:.2f} "
            f"| {row['tap_peak_rss_mb']:.0f} "
            f"| {row['baseline_peak_rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
