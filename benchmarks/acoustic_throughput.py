"""Acoustic throughput and memory: the tap against a bare baseline on the same files, one run.

    python benchmarks/acoustic_throughput.py --events 1000000 --events 3000000
    python benchmarks/acoustic_throughput.py --events 1000000 --format TSV
    python benchmarks/acoustic_throughput.py --events 1000000 --mode rrde

For each size it starts the vendor sandbox (Acoustic only) with a generated BEX export of about
that many rows: the default job definition rotates every 4 hours over 7 days, so the rows arrive
as 42 files, all written to the SFTP folder `/download` before anything is timed. Then it runs

* the tap (`python -m tap_emailtracking`, BEX mode, RECORDs to /dev/null), which lists and
  downloads every file through the SFTP sandbox and parses it (`file_settle_seconds` is 0 so the
  settle wait is not timed), and
* a bare baseline on the very same files, read straight from the download folder on disk:
  `csv.reader` with the file's delimiter, `dict(zip(header, row))` and `json.dumps` of every row
  to /dev/null,

each as its own process, timing wall clock and reading peak RSS from the kernel (wait4, through a
small launcher so the harness's own memory is not counted: see `LAUNCHER`). The tap's
record count is read from its own METRIC lines and must equal the sandbox's ground truth (the rows
of every file, `AcousticApi.bex_truth`, counted one file at a time so the harness stays small);
the tap's per-file counts (its `N records in` log lines) and the baseline's are checked against
the same truth file by file. Both run in the same invocation, so the ratio holds on a noisy
machine.

`--mode rrde` measures Raw Recipient Data Export instead: the tap plans one job a day (7 days),
submits it, polls until COMPLETE, downloads the ZIP over SFTP and parses its CSV. The sandbox
builds a ZIP only when a job completes, so a first (untimed) run builds them all and the timed run
gets hard links to the same ZIPs (`AcousticApi.reuse_rrde_exports`). The baseline unzips each
ZIP's CSV with `zipfile` and does the same `csv.reader` + `json.dumps`. The tap's count must equal
the ground truth's (`Sandbox.acoustic_rrde_rows`, streamed) and the baseline's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import record_counts, run_tap, timed  # noqa: E402
from vendor_sandbox.acoustic.data import FILE_FORMATS, AcousticDataset  # noqa: E402
from vendor_sandbox.sandbox import AcousticBexSetup, Sandbox  # noqa: E402

STREAM = "acoustic_email_events"

# argv: the delimiter, then the files (a `.zip` is read through its one CSV member).
BASELINE = r"""
import csv, io, json, sys, zipfile
delimiter = sys.argv[1]
out = open("/dev/null", "w")
counts = {}
for path in sys.argv[2:]:
    n = 0
    if path.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        member = archive.open(archive.namelist()[0])
        handle = io.TextIOWrapper(member, encoding="utf-8", newline="")
    else:
        handle = open(path, newline="", encoding="utf-8")
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader)
        for row in reader:
            out.write(json.dumps(dict(zip(header, row))) + "\n")
            n += 1
    counts[path.rsplit("/", 1)[-1]] = n
print(json.dumps(counts))
"""


# Peak RSS must be the measured program's own. A child forked from this process starts with a copy
# of its memory, and Linux keeps that copy's high-water mark in the child's ru_maxrss across exec,
# so wait4 on a direct child would report at least this harness's RSS (the sandbox, the truth).
# A tiny launcher (a bare interpreter, ~10 MB) forks the program instead and times it.
def truth_by_file(box: Sandbox) -> dict[str, int]:
    """Rows per BEX file in `/download` (ground truth), one file's rows in memory at a time."""
    api = box.acoustic_api
    assert api is not None
    return {file.name: len(api.bex_truth([file.name])[file.name]) for file in api.bex_files()}


def per_file_counts(log: str) -> dict[str, int]:
    """Records per BEX file, from the tap's `N records in` log lines."""
    return {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"Acoustic: (.+): (\d+) records in [\d.]+ s", log)
    }


def bench(events: int, fmt: str, workdir: Path, repeat: int = 1) -> dict[str, float | int | str]:
    dataset = AcousticDataset.sized(events)
    box = Sandbox(
        workdir / "sandbox",
        exacttarget=None,
        acoustic=dataset.spec,
        acoustic_bex=AcousticBexSetup(file_format=fmt),
    )
    with box:
        download = box.files_root / "download"
        truth = truth_by_file(box)
        files = [download / name for name in truth]
        missing_files = [str(p) for p in files if not p.is_file()]
        if missing_files:
            raise SystemExit(f"truth names files the download folder lacks: {missing_files}")
        truth_rows = sum(truth.values())
        file_bytes = sum(p.stat().st_size for p in files)
        config = box.tap_config(
            vendors=("acoustic",),
            acoustic_overrides={"file_settle_seconds": 0, "request_timeout_seconds": 300},
        )
        taps: list[tuple[float, float]] = []
        bases: list[tuple[float, float]] = []
        for _ in range(repeat):  # alternating, so a noisy spell hits both alike
            seconds, rss, log = run_tap(config, workdir)
            taps.append((seconds, rss))
            tap_records = record_counts(log).get(STREAM, 0)
            tap_per_file = per_file_counts(log)
            if tap_records != truth_rows:
                raise SystemExit(
                    f"the tap emitted {tap_records:,} {STREAM} records; the truth has "
                    f"{truth_rows:,}"
                )
            if tap_per_file != truth:
                wrong = {
                    n: (tap_per_file.get(n), c)
                    for n, c in truth.items()
                    if tap_per_file.get(n) != c
                }
                raise SystemExit(f"per-file counts (tap, truth) differ from the truth: {wrong}")
            seconds, rss, base_per_file = baseline(
                workdir, [BASELINE, FILE_FORMATS[fmt][0], *map(str, files)]
            )
            bases.append((seconds, rss))
            if base_per_file != truth:
                raise SystemExit("the baseline's per-file row counts differ from the truth")
        # The fastest run of each; the peak memory of all of them.
        tap_seconds, tap_rss = min(t for t, _ in taps), max(r for _, r in taps)
        base_seconds, base_rss = min(t for t, _ in bases), max(r for _, r in bases)
    return result(
        fmt,
        files=files,
        file_bytes=file_bytes,
        truth_rows=truth_rows,
        tap=(tap_records, tap_seconds, tap_rss),
        base=(sum(base_per_file.values()), base_seconds, base_rss),
    )


def bench_rrde(events: int, workdir: Path) -> dict[str, float | int | str]:
    dataset = AcousticDataset.sized(events)
    box = Sandbox(
        workdir / "sandbox",
        exacttarget=None,
        acoustic=dataset.spec,
        acoustic_bex=None,
        rrde_polls_until_complete=1,
    )
    with box:
        api = box.acoustic_api
        assert api is not None
        api.reuse_rrde_exports = True
        config = box.tap_config(
            vendors=("acoustic",),
            acoustic_mode="raw_recipient_data",
            acoustic_overrides={"request_timeout_seconds": 300, "job_deadline_seconds": 900},
        )
        run_tap(config, workdir)  # untimed: the sandbox builds every day's ZIP
        api.rrde_files.clear()
        tap_seconds, tap_rss, log = run_tap(config, workdir)
        tap_records = record_counts(log).get(STREAM, 0)
        files = list(api.rrde_files)
        truth_rows = sum(1 for _ in box.acoustic_rrde_rows())
        if tap_records != truth_rows:
            raise SystemExit(
                f"the tap emitted {tap_records:,} {STREAM} records; the truth has {truth_rows:,}"
            )
        base_seconds, base_rss, base_per_file = baseline(workdir, [BASELINE, ",", *map(str, files)])
        base_rows = sum(base_per_file.values())
        if base_rows != truth_rows:
            raise SystemExit(f"the baseline read {base_rows:,} rows; the truth has {truth_rows:,}")
        file_bytes = sum(p.stat().st_size for p in files)
    return result(
        "RRDE",
        files=files,
        file_bytes=file_bytes,
        truth_rows=truth_rows,
        tap=(tap_records, tap_seconds, tap_rss),
        base=(base_rows, base_seconds, base_rss),
    )


def baseline(workdir: Path, script_and_args: list[str]) -> tuple[float, float, dict[str, int]]:
    """Run a baseline script; return (seconds, peak RSS MB, rows per file it printed)."""
    base_out = workdir / "baseline.out"
    with base_out.open("wb") as out:
        seconds, rss, rc = timed(
            [sys.executable, "-c", *script_and_args], stdout=out.fileno(), stderr=None
        )
    if rc != 0:
        raise SystemExit("the baseline failed")
    per_file: dict[str, int] = json.loads(base_out.read_text(encoding="utf-8"))
    return seconds, rss, per_file


def result(
    fmt: str,
    *,
    files: list[Path],
    file_bytes: int,
    truth_rows: int,
    tap: tuple[int, float, float],
    base: tuple[int, float, float],
) -> dict[str, float | int | str]:
    """One benchmark row: (records, seconds, peak RSS MB) of the tap and of the baseline."""
    tap_records, tap_seconds, tap_rss = tap
    base_rows, base_seconds, base_rss = base
    tap_rate = tap_records / tap_seconds
    base_rate = base_rows / base_seconds
    return {
        "format": fmt,
        "files": len(files),
        "file_mb": file_bytes / 1e6,
        "truth_rows": truth_rows,
        "tap_records": tap_records,
        "tap_seconds": tap_seconds,
        "tap_records_per_s": tap_rate,
        "tap_peak_rss_mb": tap_rss,
        "baseline_rows": base_rows,
        "baseline_seconds": base_seconds,
        "baseline_records_per_s": base_rate,
        "baseline_peak_rss_mb": base_rss,
        "ratio": tap_rate / base_rate,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, action="append", help="approximate BEX rows")
    parser.add_argument(
        "--format",
        choices=sorted(FILE_FORMATS),
        default="CSV",
        type=str.upper,
        help="the BEX job definition's file format (default CSV)",
    )
    parser.add_argument(
        "--mode",
        choices=("bex", "rrde"),
        default="bex",
        help="bex: BEX files (default); rrde: Raw Recipient Data Export jobs (ZIP'd CSV)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="bex: runs of each, alternating; the fastest is kept (peak RSS: the largest)",
    )
    args = parser.parse_args()
    sizes = args.events or [1_000_000]
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="acoustic-bench-") as tmp:
            if args.mode == "rrde":
                row = bench_rrde(size, Path(tmp))
            else:
                row = bench(size, args.format, Path(tmp), args.repeat)
        rows.append(row)
        print(json.dumps({"requested_events": size, **row}), flush=True)
    print()
    print(
        "| format | rows | files | MB | tap s | tap rec/s | baseline s | baseline rec/s "
        "| ratio | tap peak RSS MB | baseline peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['format']} | {row['truth_rows']:,} | {row['files']} | {row['file_mb']:,.0f} "
            f"| {row['tap_seconds']:.1f} | {row['tap_records_per_s']:,.0f} "
            f"| {row['baseline_seconds']:.1f} | {row['baseline_records_per_s']:,.0f} "
            f"| {row['ratio']:.2f} | {row['tap_peak_rss_mb']:.0f} "
            f"| {row['baseline_peak_rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
