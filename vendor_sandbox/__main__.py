"""Start the vendor sandbox for a newcomer: `python -m vendor_sandbox serve --dir .sandbox`.

It listens on fixed ports (the ones meltano.yml's `sandbox` environment uses), writes a ready tap
config (`tap-config.json`), the ground truth (`ground-truth.json`, rows per stream a full sync must
deliver), the SFTP known_hosts file and the FTPS CA certificate into the folder, then serves until
interrupted. `ready` in the folder tells scripts the servers are up.

`--vendors` picks the vendors the config and the ground truth cover (default: all of them:
ExactTarget, Acoustic, Pinpointe, Mailkit and impact.com); Acoustic runs in BEX mode, its files
already in the SFTP folder `/download`, unless `--acoustic-mode raw_recipient_data`.
Pinpointe's JSON API is at `<http>/pinpointe/apijson.php`, its result links under
`<http>/pinpointe/results/`; Mailkit's at `<http>/mailkit/json.fcgi`; impact.com's REST API
under `<http>/impact/` (the config's `base_url`), its signed result URLs under
`<http>/impact-files/`.

Export jobs finish after a few status polls unless `--exacttarget-job-seconds` /
`--acoustic-job-seconds` / `--pinpointe-job-seconds` / `--impact-job-seconds` give
`QUEUED,RUNNING` seconds, each `N` or `MIN-MAX` (say `2,20-40`; each job draws its own from
`--seed`); `--<vendor>-job-limit` refuses submissions while that many jobs are in flight, with
the vendor's own error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from vendor_sandbox.acoustic.data import AcousticDataset, AcousticDataSpec
from vendor_sandbox.exacttarget.data import ExactTargetDataset, ExactTargetDataSpec
from vendor_sandbox.jobs import JobSettings
from vendor_sandbox.pinpointe.data import PinpointeDataSpec
from vendor_sandbox.sandbox import (
    DEFAULT_IMPACT_SPEC,
    DEFAULT_MAILKIT_SPEC,
    DEMO_PORTS,
    VENDORS,
    Sandbox,
    SandboxPorts,
)

DEMO_CLICK_EXPORTS = 100


def _vendors(raw: str) -> tuple[str, ...]:
    chosen = tuple(v.strip().lower() for v in raw.split(",") if v.strip())
    unknown = sorted(set(chosen) - set(VENDORS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(VENDORS)}; got {raw!r}"
        )
    return chosen


def _job_seconds(raw: str) -> str:
    try:
        JobSettings.from_text(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return raw


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of jobs >= 1; got {raw!r}")
    return int(raw)


def _jobs(seconds: str | None, limit: int | None, seed: int) -> JobSettings | None:
    if seconds is None:
        return None if limit is None else JobSettings(seed=seed, limit=limit)
    return JobSettings.from_text(seconds, seed=seed, limit=limit)


def _add_job_options(serve: argparse.ArgumentParser) -> None:
    for vendor in ("exacttarget", "acoustic", "pinpointe", "impact"):
        serve.add_argument(
            f"--{vendor}-job-seconds",
            type=_job_seconds,
            metavar="QUEUED,RUNNING",
            help="seconds a job is queued, then running; each N or MIN-MAX (e.g. 2,20-40)",
        )
        serve.add_argument(
            f"--{vendor}-job-limit",
            type=_positive,
            metavar="N",
            help="refuse submissions while N jobs are in flight (default: no limit)",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vendor_sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start every sandbox server and wait")
    serve.add_argument("--dir", type=Path, default=Path(".sandbox"))
    serve.add_argument(
        "--events",
        type=int,
        default=0,
        help="approximate ExactTarget events to generate (default: a small, edge-case-rich set)",
    )
    serve.add_argument(
        "--acoustic-events",
        type=int,
        default=0,
        help="approximate Acoustic events to generate (default: 40 an hour for 7 days)",
    )
    serve.add_argument(
        "--vendors",
        type=_vendors,
        default=VENDORS,
        help=f"vendors in tap-config.json and ground-truth.json (default: {','.join(VENDORS)})",
    )
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--protocol", choices=["sftp", "ftp", "ftps"], default="sftp")
    serve.add_argument("--acoustic-mode", choices=["bex", "raw_recipient_data"], default="bex")
    _add_job_options(serve)
    serve.add_argument(
        "--free-ports", action="store_true", help="bind free ports instead of the demo's fixed ones"
    )
    args = parser.parse_args(argv)

    root: Path = args.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "ready").unlink(missing_ok=True)
    spec = (
        ExactTargetDataset.sized(args.events, seed=args.seed).spec
        if args.events
        else ExactTargetDataSpec(seed=args.seed)
    )
    acoustic = (
        AcousticDataset.sized(args.acoustic_events, seed=args.seed).spec
        if args.acoustic_events
        else AcousticDataSpec(seed=args.seed)
    )
    sandbox = Sandbox(
        root,
        exacttarget=spec,
        acoustic=acoustic,
        ports=SandboxPorts() if args.free_ports else DEMO_PORTS,
        exacttarget_jobs=_jobs(args.exacttarget_job_seconds, args.exacttarget_job_limit, args.seed),
        acoustic_jobs=_jobs(args.acoustic_job_seconds, args.acoustic_job_limit, args.seed),
        pinpointe=PinpointeDataSpec(seed=args.seed),
        mailkit=replace(DEFAULT_MAILKIT_SPEC, seed=args.seed),
        pinpointe_jobs=_jobs(args.pinpointe_job_seconds, args.pinpointe_job_limit, args.seed),
        impact=replace(DEFAULT_IMPACT_SPEC, seed=args.seed),
        impact_jobs=_jobs(args.impact_job_seconds, args.impact_job_limit, args.seed),
    )
    if sandbox.impact_api is not None and len(args.vendors) > 1:
        # The demo's date range is every vendor's: impact.com then has 21 days x 2 programs of
        # clicks to ask for, more than its quota of 10 a day, so the demo account has 100.
        sandbox.impact_api.daily_limits["ClickExport"] = DEMO_CLICK_EXPORTS
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with sandbox:
        (root / "tap-config.json").write_text(
            json.dumps(
                sandbox.tap_config(
                    args.protocol, vendors=args.vendors, acoustic_mode=args.acoustic_mode
                ),
                indent=2,
            ),
            encoding="utf-8",
        )
        (root / "ground-truth.json").write_text(
            json.dumps(
                sandbox.ground_truth_counts(vendors=args.vendors, acoustic_mode=args.acoustic_mode),
                indent=2,
            ),
            encoding="utf-8",
        )
        (root / "ready").write_text(sandbox.http.url, encoding="utf-8")
        print(
            f"vendor sandbox ready ({', '.join(args.vendors)}): HTTP {sandbox.http.url}, "
            f"SFTP {sandbox.sftp.port}, "
            f"FTP {sandbox.ftp.port}, FTPS {sandbox.ftps.port}; config in {root}",
            flush=True,
        )
        stop.wait()
    (root / "ready").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
