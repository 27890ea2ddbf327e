"""Full sync of ExactTarget and Acoustic (Raw Recipient Data Export) with slow export jobs.

    python benchmarks/full_sync.py                     # 8 windows a vendor, jobs 2 s + 20-40 s
    python benchmarks/full_sync.py --events 400000 --job-seconds 2,20-40 --windows 8
    python benchmarks/full_sync.py --quick             # tiny, jobs 1-2 s: a smoke test

A sync that waits for one export job at a time takes about the sum of its jobs' durations; one
that keeps jobs in flight at both vendors at once takes about the slowest job plus the time to
download and parse the results. This measures which the tap does.

It starts the vendor sandbox in-process with ExactTarget and Acoustic data over `--windows` days,
one-day windows, so each vendor plans `--windows` export jobs, and runs the tap CLI (RECORDs to
/dev/null, peak RSS from the kernel) on a fresh job board each time:

* `instant`: every job done at its first status poll, so the run is start-up, download and
  parse with no waiting: the "download+parse" figure of the other rows;
* `max_jobs_in_flight=1`: one job at a time per vendor;
* `default`: the setting left out;
* `max_jobs_in_flight=N`, N = windows: every window's job at once.

Sum of job durations and the slowest job come from the sandbox's submission logs (submission to
done, on its clock). wall / (slowest job + download+parse) is about 1 when the jobs overlap and
about the number of jobs when they do not. Every run must submit exactly one job per window and
vendor, emit the ground truth's records, and download only files built before anything was timed
(ExactTarget's are prebuilt; Acoustic's come from an untimed warm-up run and are hard-linked), so
the sandbox's generator is never timed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import record_counts, run_tap  # noqa: E402
from vendor_sandbox.acoustic.api import AcousticApi  # noqa: E402
from vendor_sandbox.acoustic.data import AcousticDataset  # noqa: E402
from vendor_sandbox.exacttarget.data import EVENT_KINDS, ExactTargetDataset  # noqa: E402
from vendor_sandbox.jobs import JobSettings, Submission  # noqa: E402
from vendor_sandbox.sandbox import Sandbox  # noqa: E402

START = date(2024, 1, 1)
ACOUSTIC_STREAM = "acoustic_email_events"
INSTANT = "0,0"


@dataclass(frozen=True)
class Options:
    events: int
    job_seconds: str
    windows: int
    poll: tuple[float, float]
    seed: int


@dataclass(frozen=True)
class Run:
    """One timed sync: its name, `max_jobs_in_flight` (None: left out) and job durations."""

    name: str
    in_flight: int | None
    job_seconds: str


@dataclass
class Figures:
    """What one run measured."""

    name: str
    wall: float
    rss_mb: float
    jobs: dict[str, list[Submission]]
    max_in_flight: dict[str, int]

    @property
    def durations(self) -> list[float]:
        return [duration(s) for log in self.jobs.values() for s in log]

    def overlap(self) -> int:
        """The most jobs in flight at once across both vendors (their boards share a clock),
        counted as a board counts: at each submission, itself and the jobs not yet ended."""
        jobs = [s for log in self.jobs.values() for s in log]
        return max(
            (
                1 + sum(1 for k in jobs if k is not j and k.at <= j.at < k.at + duration(k))
                for j in jobs
            ),
            default=0,
        )


def duration(job: Submission) -> float:
    """Seconds from submission to done at the vendor."""
    if job.ends is None:
        raise SystemExit(f"job {job.job_id} ({job.unit}) has no duration: the board is not timed")
    return job.ends - job.at


def datasets(opts: Options) -> tuple[ExactTargetDataset, AcousticDataset]:
    """Both vendors' data over the same `windows` days (a start_date and end_date serve both)."""
    end = START + timedelta(days=opts.windows - 1)
    return (
        ExactTargetDataset.sized(opts.events, start=START, end=end),
        AcousticDataset.sized(opts.events, start=START, end=end),
    )


def prebuild_exacttarget(box: Sandbox, windows: int) -> set[int]:
    """Write every one-day window's ZIP ahead of time; return their inodes."""
    lookback = timedelta(days=box.SEND_LOOKBACK_DAYS)
    days = [START + timedelta(days=n) for n in range(windows)]
    return {box.et_api.prebuild((day, day), (day - lookback, day)).stat().st_ino for day in days}


def tap_config(box: Sandbox, opts: Options, in_flight: int | None) -> dict[str, Any]:
    """Both vendors, one-day windows, the benchmark's polling, deadlines far beyond any job."""
    first, most = opts.poll
    common: dict[str, Any] = {
        "window_days": 1,
        "poll_interval_seconds": first,
        "poll_max_interval_seconds": most,
        "job_deadline_seconds": 3600,
        "request_timeout_seconds": 300,
    }
    if in_flight is not None:
        common["max_jobs_in_flight"] = in_flight
    return box.tap_config(
        vendors=("exacttarget", "acoustic"),
        acoustic_mode="raw_recipient_data",
        acoustic_overrides=common,
        **common,
    )


def truth_counts(box: Sandbox) -> dict[str, int]:
    """Records per stream a full sync must deliver (Acoustic's rows streamed, not held)."""
    truth = box.ground_truth_counts(vendors=("exacttarget",))
    truth[ACOUSTIC_STREAM] = sum(1 for _ in box.acoustic_rrde_rows())
    return truth


def check_counts(name: str, counts: dict[str, int], truth: dict[str, int]) -> None:
    """Events and Acoustic rows exactly; job and subscriber rows at least (windows repeat them)."""
    exact = {ACOUSTIC_STREAM, *(f"exacttarget_{kind}" for kind in EVENT_KINDS)}
    wrong = {
        stream: (counts.get(stream, 0), n)
        for stream, n in truth.items()
        if counts.get(stream, 0) < n or (stream in exact and counts.get(stream, 0) != n)
    }
    if wrong:
        raise SystemExit(f"{name}: record counts (tap, truth) differ from the truth: {wrong}")


class Bench:
    """One sandbox, several syncs against it, each on a fresh job board."""

    def __init__(self, box: Sandbox, opts: Options, workdir: Path) -> None:
        self.box = box
        self.opts = opts
        self.workdir = workdir
        acoustic = box.acoustic_api
        assert acoustic is not None
        self.acoustic: AcousticApi = acoustic
        self.vendors = {"exacttarget": box.et_api, "acoustic": self.acoustic}
        self.truth: dict[str, int] = {}
        self.built: dict[str, set[int]] = {}

    def prepare(self) -> None:
        """Build every result file before anything is timed, and the ground truth."""
        self.built["exacttarget"] = prebuild_exacttarget(self.box, self.opts.windows)
        self.acoustic.reuse_rrde_exports = True
        self.truth = truth_counts(self.box)
        self.run(Run("warm-up", None, INSTANT))  # the sandbox builds Acoustic's ZIPs now
        self.built["acoustic"] = {path.stat().st_ino for path in self.acoustic.rrde_files}

    def run(self, run: Run) -> Figures:
        """Sync once on fresh job boards; check jobs, records and files; return the figures."""
        settings = JobSettings.from_text(run.job_seconds, seed=self.opts.seed)
        files_before = self._files()
        for api in self.vendors.values():
            api.jobs.reset(settings)
        workdir = self.workdir / run.name
        workdir.mkdir()
        wall, rss, log = run_tap(tap_config(self.box, self.opts, run.in_flight), workdir)
        check_counts(run.name, record_counts(log), self.truth)
        figures = Figures(
            run.name,
            wall,
            rss,
            {vendor: api.submission_log for vendor, api in self.vendors.items()},
            {vendor: api.max_in_flight for vendor, api in self.vendors.items()},
        )
        self._check_jobs(figures)
        self._check_files(run.name, files_before)
        return figures

    def _files(self) -> dict[str, list[Path]]:
        return {
            "exacttarget": list(self.box.et_api.files),
            "acoustic": list(self.acoustic.rrde_files),
        }

    def _check_jobs(self, figures: Figures) -> None:
        for vendor, log in figures.jobs.items():
            units = [job.unit for job in log]
            if len(units) != self.opts.windows or len(set(units)) != self.opts.windows:
                raise SystemExit(
                    f"{figures.name}: {vendor} got {len(units)} jobs for {len(set(units))} "
                    f"windows; expected one job for each of {self.opts.windows}: {units}"
                )

    def _check_files(self, name: str, before: dict[str, list[Path]]) -> None:
        """Every file the run downloaded is one built before timing (no generator in the run)."""
        for vendor, paths in self._files().items():
            built = self.built.get(vendor)
            if built is None:
                continue
            fresh = [p for p in paths[len(before[vendor]) :] if p.stat().st_ino not in built]
            if fresh:
                raise SystemExit(
                    f"{name}: the sandbox generated {vendor} files during the run: {fresh}"
                )


def runs(opts: Options) -> list[Run]:
    return [
        Run("instant", None, INSTANT),
        Run("max_jobs_in_flight=1", 1, opts.job_seconds),
        Run("default", None, opts.job_seconds),
        Run(f"max_jobs_in_flight={opts.windows}", opts.windows, opts.job_seconds),
    ]


def row(figures: Figures, download_parse: float) -> dict[str, Any]:
    durations = figures.durations
    slowest = max(durations)
    return {
        "run": figures.name,
        "wall_s": figures.wall,
        "jobs": {vendor: len(log) for vendor, log in figures.jobs.items()},
        "sum_job_s": sum(durations),
        "slowest_job_s": slowest,
        "download_parse_s": download_parse,
        "ratio": figures.wall / (slowest + download_parse),
        "max_in_flight": {**figures.max_in_flight, "both": figures.overlap()},
        "peak_rss_mb": figures.rss_mb,
    }


def table(rows: Iterable[dict[str, Any]]) -> str:
    lines = [
        "| run | wall s | jobs | sum of job durations s | slowest job s | download+parse s "
        "| wall/(slowest+dl+parse) | max jobs in flight (ET/Acoustic/both) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        flying = r["max_in_flight"]
        lines.append(
            f"| {r['run']} | {r['wall_s']:.1f} | {sum(r['jobs'].values())} "
            f"| {r['sum_job_s']:.1f} | {r['slowest_job_s']:.1f} | {r['download_parse_s']:.1f} "
            f"| {r['ratio']:.2f} | {flying['exacttarget']}/{flying['acoustic']}/{flying['both']} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def bench(opts: Options, workdir: Path) -> list[dict[str, Any]]:
    et, acoustic = datasets(opts)
    box = Sandbox(
        workdir / "sandbox",
        exacttarget=et.spec,
        acoustic=acoustic.spec,
        acoustic_bex=None,
        exacttarget_jobs=JobSettings.from_text(INSTANT),
        acoustic_jobs=JobSettings.from_text(INSTANT),
    )
    rows = []
    with box:
        harness = Bench(box, opts, workdir)
        harness.prepare()
        print(f"ground truth: {json.dumps(harness.truth)}", flush=True)
        download_parse = 0.0
        for run in runs(opts):
            figures = harness.run(run)
            if run.name == "instant":
                download_parse = figures.wall
            rows.append(row(figures, download_parse))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _poll(text: str) -> tuple[float, float]:
    first, _, most = text.partition(",")
    try:
        pair = (float(first), float(most or first))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST,MAX seconds; got {text!r}") from None
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 0 < FIRST <= MAX; got {text!r}")
    return pair


def _job_seconds(text: str) -> str:
    try:
        JobSettings.from_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, help="approximate events a vendor (default 200000)")
    parser.add_argument(
        "--job-seconds",
        type=_job_seconds,
        help="QUEUED,RUNNING seconds of each job, each N or MIN-MAX (default 2,20-40)",
    )
    parser.add_argument("--windows", type=int, help="one-day windows a vendor (default 8)")
    parser.add_argument(
        "--poll-seconds",
        type=_poll,
        help="FIRST,MAX seconds between status checks (default 1,2)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the job durations")
    parser.add_argument(
        "--quick", action="store_true", help="tiny defaults: 2000 events, 2 windows, jobs 0,1-2"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    windows = args.windows or (2 if quick else 8)
    if windows < 1:
        parser.error("--windows must be at least 1")
    return Options(
        events=args.events or (2_000 if quick else 200_000),
        job_seconds=args.job_seconds or ("0,1-2" if quick else "2,20-40"),
        windows=windows,
        poll=args.poll_seconds or ((0.2, 0.5) if quick else (1.0, 2.0)),
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    command = shlex.join(
        ["python", "benchmarks/full_sync.py", *(sys.argv[1:] if argv is None else argv)]
    )
    print(f"command: {command}")
    print(
        f"events a vendor: {opts.events:,}; windows a vendor: {opts.windows} (one day each); "
        f"job seconds (queued,running): {opts.job_seconds}; seed {opts.seed}; "
        f"poll_interval_seconds {opts.poll[0]:g}, poll_max_interval_seconds {opts.poll[1]:g}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="full-sync-bench-") as tmp:
        rows = bench(opts, Path(tmp))
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
