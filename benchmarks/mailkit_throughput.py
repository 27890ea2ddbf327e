"""Mailkit throughput and memory: the tap against a bare baseline on the same pages, one run.

    python benchmarks/mailkit_throughput.py --rows 1000000 --rows 3000000 --repeat 2

For each size it starts the vendor sandbox (Mailkit only) with an account of about that many raw
rows (messages, their bounces and their opens, clicks and unsubscribe answers), then runs

* the tap (`python -m tap_emailtracking`, RECORDs to /dev/null), which walks the three raw
  functions in pages of 25,000 from the first row to the end (no pause between calls), and
* a bare baseline that fetches the very same pages from the same sandbox (the same requests:
  each page from the last id of the one before, the repeated row dropped) with the standard
  library (`urllib.request`, `json.loads`) and writes `json.dumps` of every row to /dev/null,

each as its own process (wall clock and peak RSS from `benchmarks.measure`). Both fetch from the
sandbox, which builds each page as it is asked, so the page building counts alike for both. The
tap's record counts (its METRIC lines) and the baseline's must equal the sandbox's ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import best_of, record_counts, run_tap, throughput_table, timed  # noqa: E402
from vendor_sandbox.sandbox import DEFAULT_MAILKIT_SPEC, Sandbox  # noqa: E402

RAW = {
    "mailkit_bounces": ("mailkit.report.raw.bounces", "ID_undelivered_log", "ID_UNDELIVERED_LOG"),
    "mailkit_messages": ("mailkit.report.raw.messages", "ID_send_message", "ID_send_message"),
    "mailkit_responses": ("mailkit.report.raw.responses", "ID_log", "ID_log"),
}
ROWS_PER_MESSAGE = 2.35  # the generator's raw rows per message (a bounce or 0-6 responses)
PAGE = 25_000

# argv: endpoint, client id, md5, then function:start-parameter:id-key triples.
BASELINE = r"""
import json, sys, urllib.request
endpoint, client_id, md5 = sys.argv[1:4]
out = open("/dev/null", "w")
total = 0
for spec in sys.argv[4:]:
    function, start_parameter, id_key = spec.split(":")
    last = None
    while True:
        parameters = {"limit": "25000"}
        if last is not None:
            parameters[start_parameter] = str(last)
        body = json.dumps({"function": function, "id": client_id, "md5": md5,
                           "parameters": parameters}).encode()
        request = urllib.request.Request(endpoint, data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as answer:
            rows = json.loads(answer.read())
        fresh = [row for row in rows if last is None or int(row[id_key]) > last]
        for row in fresh:
            out.write(json.dumps(row) + "\n")
        total += len(fresh)
        if fresh:
            last = int(fresh[-1][id_key])
        if len(rows) < 25000:
            break
print(total)
"""


def bench(rows: int, workdir: Path, repeat: int) -> dict[str, float | int]:
    messages = max(1000, round(rows / ROWS_PER_MESSAGE))
    spec = replace(DEFAULT_MAILKIT_SPEC, campaigns=10, sends_per_campaign=5)
    spec = replace(spec, recipients_per_send=max(1, round(messages / spec.sends)))
    box = Sandbox(
        workdir / "sandbox", exacttarget=None, acoustic=None, pinpointe=None, mailkit=spec
    )
    with box:
        api = box.mailkit_api
        assert api is not None
        config = box.tap_config(
            vendors=("mailkit",),
            mailkit_overrides={"page_size": PAGE, "request_timeout_seconds": 300},
        )
        mailkit = config["mailkit"]
        counts = box.mailkit_counts()
        wanted = {stream: counts[stream] for stream in RAW}
        total = sum(wanted.values())
        triples = [":".join(raw) for raw in RAW.values()]
        taps: list[tuple[float, float]] = []
        bases: list[tuple[float, float]] = []
        for _ in range(repeat):  # alternating, so a noisy spell hits both alike
            seconds, rss, log = run_tap(config, workdir)
            got = {stream: record_counts(log).get(stream, 0) for stream in RAW}
            if got != wanted:
                raise SystemExit(f"the tap emitted {got}; the truth has {wanted}")
            taps.append((seconds, rss))
            out = workdir / "baseline.out"
            with out.open("wb") as handle:
                seconds, rss, rc = timed(
                    [
                        sys.executable,
                        "-c",
                        BASELINE,
                        mailkit["endpoint"],
                        mailkit["client_id"],
                        mailkit["client_md5"],
                        *triples,
                    ],
                    stdout=handle.fileno(),
                    stderr=None,
                )
            base_rows = int(out.read_text(encoding="utf-8") or 0)
            if rc != 0 or base_rows != total:
                raise SystemExit(f"the baseline read {base_rows:,} rows; the truth has {total:,}")
            bases.append((seconds, rss))
        pages = sum(len(api.calls(raw[0])) for raw in RAW.values())
    (tap_seconds, tap_rss), (base_seconds, base_rss) = best_of(taps), best_of(bases)
    return {
        "rows": total,
        "pages_served": pages,
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
    parser.add_argument("--rows", type=int, action="append", help="approximate raw rows")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs of each, alternating; the fastest kept"
    )
    args = parser.parse_args()
    results = []
    for size in args.rows or [1_000_000]:
        with tempfile.TemporaryDirectory(prefix="mailkit-bench-") as tmp:
            row = bench(size, Path(tmp), args.repeat)
        results.append(row)
        print(json.dumps({"requested_rows": size, **row}), flush=True)
    print()
    print(throughput_table(results, [("pages served", "pages_served", "d")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
