#!/usr/bin/env python3
"""Quick start: from a fresh clone to sandbox data in DuckDB, checked against the truth.

    python3 scripts/quickstart.py

Steps (each prints a header):

1. `.venv`: the tap and the vendor sandbox (`pip install -e .[sandbox]`).
2. `.venv-meltano`: Meltano in its own venv (it pins its own dependencies).
3. Start the vendor sandbox (`python -m vendor_sandbox serve --dir .sandbox`, fixed ports; it serves
   ExactTarget, Acoustic, Pinpointe, Mailkit and impact.com) and wait for `.sandbox/ready`.
4. Clean slate: remove `output/emailtracking.duckdb` and clear the Meltano state of the pipeline.
5. `meltano install`, then `meltano run tap-emailtracking target-duckdb`.
6. Count the rows of every table in DuckDB and compare them with `.sandbox/ground-truth.json`
   (the ten ExactTarget tables, `acoustic_email_events`, the eight Pinpointe, the five
   Mailkit and the four impact.com tables). A table the ground truth names but DuckDB lacks
   fails the check, and so does a missing vendor in the ground truth.

Exits non-zero when a step fails or any table differs from the ground truth. The sandbox is always
stopped. Only the standard library is used, so any Python 3.10-3.13 can run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOWS = os.name == "nt"
BIN = "Scripts" if WINDOWS else "bin"
EXE = ".exe" if WINDOWS else ""

VENV = ROOT / ".venv"
MELTANO_VENV = ROOT / ".venv-meltano"
SANDBOX_DIR = ROOT / ".sandbox"
OUTPUT_DIR = ROOT / "output"
DUCKDB_FILE = OUTPUT_DIR / "emailtracking.duckdb"
TARGET_VENV = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv"

MELTANO_REQUIREMENT = "meltano>=4.4,<5"
ENVIRONMENT = "sandbox"
STATE_ID = f"{ENVIRONMENT}:tap-emailtracking-to-target-duckdb"
TARGET_SCHEMA = "tap_emailtracking"  # meltano.yml: target-duckdb default_target_schema
SANDBOX_READY_SECONDS = 180
# What the sandbox serves, configures and counts.
VENDORS = "exacttarget,acoustic,pinpointe,mailkit,impact"
# Every table the demo must fill (the ground truth must name each one, too).
EXPECTED_TABLES = (
    "exacttarget_jobs",
    "exacttarget_job_links",
    "exacttarget_job_lists",
    "exacttarget_subscribers",
    "exacttarget_opens",
    "exacttarget_clicks",
    "exacttarget_bounces",
    "exacttarget_unsubscribes",
    "exacttarget_conversions",
    "exacttarget_survey_responses",
    "acoustic_email_events",
    "pinpointe_lists",
    "pinpointe_segments",
    "pinpointe_tags",
    "pinpointe_newsletter_sends",
    "pinpointe_list_subscribers",
    "pinpointe_segment_subscribers",
    "pinpointe_tag_subscribers",
    "pinpointe_newsletter_activity",
    "mailkit_campaigns",
    "mailkit_sends",
    "mailkit_bounces",
    "mailkit_messages",
    "mailkit_responses",
    "impact_programs",
    "impact_clicks",
    "impact_report_actions",
    "impact_report_performance_by_day",
)

COUNT_ROWS = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
tables = con.execute(
    "SELECT table_catalog, table_name FROM information_schema.tables"
    " WHERE table_schema = ? ORDER BY table_name",
    [sys.argv[2]],
).fetchall()
counts = {
    name: con.execute(f'SELECT count(*) FROM "{catalog}"."{sys.argv[2]}"."{name}"').fetchone()[0]
    for (catalog, name) in tables
}
print(json.dumps(counts))
"""


class StepError(Exception):
    """A step failed; the message says which and what to try."""


def python_in(venv: Path) -> Path:
    return venv / BIN / f"python{EXE}"


def tool_in(venv: Path, name: str) -> Path:
    return venv / BIN / f"{name}{EXE}"


def header(step: int, total: int, title: str) -> None:
    print(f"\n{'=' * 78}\n[{step}/{total}] {title}\n{'=' * 78}", flush=True)


def run(cmd: list[str | Path], *, what: str, env: dict[str, str] | None = None) -> None:
    printable = " ".join(str(part) for part in cmd)
    print(f"$ {printable}", flush=True)
    code = subprocess.call([str(part) for part in cmd], cwd=ROOT, env=env)
    if code != 0:
        raise StepError(f"{what} failed (exit code {code}): {printable}")


def ensure_venv(venv: Path) -> None:
    if python_in(venv).exists():
        print(f"{venv.name} exists; reusing it", flush=True)
        return
    run([sys.executable, "-m", "venv", venv], what=f"creating {venv.name}")
    # The pip bundled with early 3.10 releases predates editable installs of pyproject projects.
    run(
        [python_in(venv), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        what=f"upgrading pip in {venv.name}",
    )


def meltano_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MELTANO_ENVIRONMENT"] = ENVIRONMENT  # the demo always runs the sandbox environment
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["PYTHONUTF8"] = "1"
    return env


def meltano(*args: str, what: str) -> None:
    run([tool_in(MELTANO_VENV, "meltano"), *args], what=what, env=meltano_env())


def start_sandbox() -> tuple[subprocess.Popen[bytes], Path]:
    SANDBOX_DIR.mkdir(parents=True, exist_ok=True)
    ready = SANDBOX_DIR / "ready"
    ready.unlink(missing_ok=True)
    (SANDBOX_DIR / "ground-truth.json").unlink(missing_ok=True)
    log_path = SANDBOX_DIR / "sandbox.log"
    cmd = [
        str(python_in(VENV)),
        "-m",
        "vendor_sandbox",
        "serve",
        "--dir",
        str(SANDBOX_DIR),
        "--vendors",
        VENDORS,
    ]
    print(f"$ {' '.join(cmd)}  (log: {log_path.relative_to(ROOT)})", flush=True)
    log = log_path.open("wb")
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + SANDBOX_READY_SECONDS
    while not ready.exists():
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise StepError(
                f"the sandbox exited with code {process.returncode} before it was ready. Its log "
                f"ends with:\n{tail}\nIf a port (18080, 18021, 18022, 18990) is in use, stop "
                "the program holding it (often a sandbox left running) and try again."
            )
        if time.monotonic() > deadline:
            stop_sandbox(process)
            raise StepError(
                f"the sandbox was not ready after {SANDBOX_READY_SECONDS} s; see {log_path}"
            )
        time.sleep(0.2)
    print(f"sandbox ready at {ready.read_text(encoding='utf-8').strip()}", flush=True)
    return process, log_path


def stop_sandbox(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    print("\nstopping the vendor sandbox ...", flush=True)
    process.terminate()  # SIGTERM on POSIX: the sandbox closes its servers and exits
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def clean_slate() -> None:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for path in (DUCKDB_FILE, DUCKDB_FILE.with_name(DUCKDB_FILE.name + ".wal")):
        if path.exists():
            print(f"removing {path.relative_to(ROOT)}", flush=True)
            path.unlink()
    meltano(
        f"--environment={ENVIRONMENT}",
        "state",
        "clear",
        "--force",
        STATE_ID,
        what="clearing the Meltano state",
    )


def count_rows() -> dict[str, int]:
    python = python_in(TARGET_VENV)
    if not python.exists():
        raise StepError(f"the target's venv has no Python at {python}; run `meltano install`")
    if not DUCKDB_FILE.exists():
        raise StepError(f"{DUCKDB_FILE} was not created by target-duckdb")
    out = subprocess.run(
        [str(python), "-c", COUNT_ROWS, str(DUCKDB_FILE), TARGET_SCHEMA],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise StepError(f"querying {DUCKDB_FILE} failed:\n{out.stderr}")
    counts: dict[str, int] = json.loads(out.stdout)
    return counts


def compare(counts: dict[str, int], truth: dict[str, int]) -> bool:
    rows = []
    all_ok = True
    for stream in sorted(set(truth) | set(counts) | set(EXPECTED_TABLES)):
        have = counts.get(stream)
        want = truth.get(stream)
        ok = have is not None and want is not None and have == want
        all_ok &= ok
        rows.append(
            (
                stream,
                "missing" if have is None else str(have),
                "-" if want is None else str(want),
                "ok" if ok else "DIFFERS",
            )
        )
    heads = ("stream", "rows in DuckDB", "ground truth", "ok")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        )

    print(line(heads))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    return all_ok


def main() -> int:
    os.chdir(ROOT)
    started = time.monotonic()
    total = 6
    sandbox: subprocess.Popen[bytes] | None = None
    timings: list[tuple[str, float]] = []

    def timed(title: str, step_started: float) -> None:
        timings.append((title, time.monotonic() - step_started))

    try:
        t = time.monotonic()
        header(1, total, "Tap + vendor sandbox into .venv (pip install -e .[sandbox])")
        ensure_venv(VENV)
        run(
            [python_in(VENV), "-m", "pip", "install", "--quiet", "-e", ".[sandbox]"],
            what="installing the tap into .venv",
        )
        timed("install tap", t)

        t = time.monotonic()
        header(2, total, f"Meltano into .venv-meltano ({MELTANO_REQUIREMENT})")
        ensure_venv(MELTANO_VENV)
        run(
            [python_in(MELTANO_VENV), "-m", "pip", "install", "--quiet", MELTANO_REQUIREMENT],
            what="installing Meltano into .venv-meltano",
        )
        timed("install meltano", t)

        t = time.monotonic()
        header(
            3,
            total,
            "Start the vendor sandbox: ExactTarget + Acoustic "
            "(HTTP 18080, SFTP 18022, FTP 18021, FTPS 18990)",
        )
        sandbox, _ = start_sandbox()
        timed("start sandbox", t)

        t = time.monotonic()
        header(4, total, "Clean slate: remove output/emailtracking.duckdb, clear Meltano state")
        clean_slate()
        timed("clean slate", t)

        t = time.monotonic()
        header(5, total, "meltano install; meltano run tap-emailtracking target-duckdb")
        meltano("install", what="meltano install")
        timed("meltano install", t)
        t = time.monotonic()
        meltano("run", "tap-emailtracking", "target-duckdb", what="meltano run")
        timed("meltano run", t)

        t = time.monotonic()
        header(6, total, "Rows in DuckDB vs the sandbox's ground truth")
        truth: dict[str, int] = json.loads(
            (SANDBOX_DIR / "ground-truth.json").read_text(encoding="utf-8")
        )
        all_ok = compare(count_rows(), truth)
        timed("check", t)
    except StepError as exc:
        print(f"\nQUICKSTART FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        stop_sandbox(sandbox)

    print("\ntimings: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in timings))
    print(f"total: {time.monotonic() - started:.1f} s")
    if not all_ok:
        print(
            "\nQUICKSTART FAILED: some tables differ from the ground truth (see the table above).",
            file=sys.stderr,
        )
        return 1
    print(
        f"\nQuick start passed: every table in {DUCKDB_FILE.relative_to(ROOT)} matches the "
        "sandbox's ground truth."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
