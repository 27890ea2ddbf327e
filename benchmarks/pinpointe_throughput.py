"""Pinpointe throughput and memory: the tap against a bare baseline on the same result files.

    python benchmarks/pinpointe_throughput.py --rows 1000000 --rows 3000000 --repeat 2

For each size it starts the vendor sandbox (Pinpointe only) with an account sized so that about
40% of the rows are subscribers (two lists, two segments, two tags) and 60% are contact activity
(20 sends per million rows: one send's file, which bounds the tap's memory since activity
ordinals are counted per file, is the same size at every scale), then runs

* the tap (`python -m tap_emailtracking`, RECORDs to /dev/null): it lists lists, segments, tags
  and sends, submits one async export per unit (up to 10 in flight), polls AsyncJobStatus,
  downloads each result file over HTTP and parses it (subscribers and activity), and
* a bare baseline on the very same files, read from the sandbox's results folder: the standard
  library's `json` (a whole-file `json.load` for an array or a holder object, `json.loads` per
  line for JSON lines) and `json.dumps` of every row to /dev/null,

each as its own process (wall clock and peak RSS from `benchmarks.measure`). Writing a
million-row result file takes the sandbox seconds, which must not count as the tap's: a first,
untimed run has the sandbox write every file, and the timed runs' jobs get hard links to them
(`PinpointeApi.reuse_results`). The tap's record counts (its METRIC lines) must equal the
sandbox's ground truth for both streams, and the baseline's row count must equal them too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import best_of, record_counts, run_tap, throughput_table, timed  # noqa: E402
from vendor_sandbox.pinpointe.data import PinpointeDataSpec  # noqa: E402
from vendor_sandbox.sandbox import Sandbox  # noqa: E402

SUBSCRIBER_STREAMS = (
    "pinpointe_list_subscribers",
    "pinpointe_segment_subscribers",
    "pinpointe_tag_subscribers",
)
ACTIVITY = "pinpointe_newsletter_activity"
SENDS_PER_MILLION = 20  # a bigger account has more sends; each send's file stays the same size
EVENTS_PER_RECIPIENT = 1.67  # the generator's mean (60% active, opens 1-3, clicks 45%)
MEMBERSHIPS_PER_SUBSCRIBER = 1.85  # list, segment and tag rows per subscriber (measured)

BASELINE = r"""
import json, sys
out = open("/dev/null", "w")
rows = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if whole is None:
        records = (json.loads(line) for line in text.splitlines() if line.strip())
    elif isinstance(whole, list):
        records = whole
    else:
        records = next((v for v in whole.values() if isinstance(v, list)), [])
    del text
    for record in records:
        out.write(json.dumps(record) + "\n")
        rows += 1
print(rows)
"""


def spec_for(rows: int) -> PinpointeDataSpec:
    """An account with about `rows` subscriber and activity rows (40% / 60%)."""
    sends = max(1, round(rows * SENDS_PER_MILLION / 1_000_000))
    subscribers = max(1000, round(rows * 0.4 / MEMBERSHIPS_PER_SUBSCRIBER))
    recipients = min(subscribers, round(rows * 0.6 / EVENTS_PER_RECIPIENT / sends))
    return PinpointeDataSpec(
        lists=2,
        segments=2,
        tags=2,
        subscribers=subscribers,
        sends=sends,
        recipients_per_send=recipients,
    )


def bench(rows: int, workdir: Path, repeat: int) -> dict[str, float | int]:
    box = Sandbox(
        workdir / "sandbox",
        exacttarget=None,
        acoustic=None,
        pinpointe=spec_for(rows),
        pinpointe_polls_until_complete=1,
    )
    with box:
        api = box.pinpointe_api
        assert api is not None
        api.reuse_results = True
        config = box.tap_config(
            vendors=("pinpointe",),
            pinpointe_overrides={
                "max_jobs_in_flight": 10,
                "request_timeout_seconds": 300,
                "job_deadline_seconds": 3600,
            },
        )
        truth = box.pinpointe_counts()
        wanted = {s: truth[s] for s in (*SUBSCRIBER_STREAMS, ACTIVITY)}
        total = sum(wanted.values())
        run_tap(config, workdir)  # untimed: the sandbox writes every result file once
        files = sorted({path.resolve() for path in api.files})
        file_bytes = sum(path.stat().st_size for path in files)
        taps: list[tuple[float, float]] = []
        bases: list[tuple[float, float]] = []
        for _ in range(repeat):  # alternating, so a noisy spell hits both alike
            seconds, rss, log = run_tap(config, workdir)
            counts = record_counts(log)
            got = {s: counts.get(s, 0) for s in wanted}
            if got != wanted:
                raise SystemExit(f"the tap emitted {got}; the truth has {wanted}")
            taps.append((seconds, rss))
            out = workdir / "baseline.out"
            with out.open("wb") as handle:
                seconds, rss, rc = timed(
                    [sys.executable, "-c", BASELINE, *map(str, files)],
                    stdout=handle.fileno(),
                    stderr=None,
                )
            base_rows = int(out.read_text(encoding="utf-8"))
            if rc != 0 or base_rows != total:
                raise SystemExit(f"the baseline read {base_rows:,} rows; the truth has {total:,}")
            bases.append((seconds, rss))
    (tap_seconds, tap_rss), (base_seconds, base_rss) = best_of(taps), best_of(bases)
    return {
        "rows": total,
        "subscriber_rows": sum(wanted[s] for s in SUBSCRIBER_STREAMS),
        "activity_rows": wanted[ACTIVITY],
        "files": len(files),
        "file_mb": file_bytes / 1e6,
        "tap_seconds": tap_seconds,
        "tap_records_per_s": total / tap_seconds,
        "tap_peak_rss_mb": tap_rss,
        "baseline_seconds": base_seconds,
        "baseline_records_per_s": total / base_seconds,
        "baseline_peak_rss_mb": base_rss,
        "ratio": base_seconds / tap_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="approximate rows")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs of each, alternating; the fastest kept"
    )
    args = parser.parse_args()
    results = []
    for size in args.rows or [1_000_000]:
        with tempfile.TemporaryDirectory(prefix="pinpointe-bench-") as tmp:
            row = bench(size, Path(tmp), args.repeat)
        results.append(row)
        print(json.dumps({"requested_rows": size, **row}), flush=True)
    print()
    print(
        throughput_table(
            results,
            [
                ("subscribers", "subscriber_rows", ",d"),
                ("activity", "activity_rows", ",d"),
                ("files", "files", "d"),
                ("MB", "file_mb", ",.0f"),
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
