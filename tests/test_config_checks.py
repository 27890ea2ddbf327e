"""Every setting is checked when the tap starts, before any data moves, with one clear line.

The sandbox has both vendors; Acoustic's stream syncs first, so a bad ExactTarget setting used to
surface only after the whole Acoustic sync, as a traceback. Each bad setting must now end the run
at once: exit 1, exactly one ERROR line naming the setting and what to set, no traceback, no
RECORD, and no request to either vendor. Unknown keys are warned about with the nearest key.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tap_emailtracking import cli
from tap_emailtracking.errors import CorruptFileError, UnexpectedError
from vendor_sandbox.acoustic.data import AcousticDataSpec
from vendor_sandbox.exacttarget.data import ExactTargetDataSpec
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, parse_messages, run_tap, tap_env

MISSING = "/nonexistent/known_hosts"


@pytest.fixture
def both(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox with ExactTarget and Acoustic (BEX)."""
    with Sandbox(
        tmp_path / "sandbox", exacttarget=ExactTargetDataSpec(), acoustic=AcousticDataSpec()
    ) as box:
        yield box


def both_config(box: Sandbox) -> dict[str, Any]:
    return box.tap_config(vendors=("exacttarget", "acoustic"))


def error_lines(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| ERROR " in line]


def assert_refused(box: Sandbox, run: TapRun, *named: str) -> None:
    """Exit 1, one ERROR line naming each of `named` and what to do; nothing else happened."""
    assert run.returncode == 1, run.stderr[-3000:]
    errors = error_lines(run)
    assert len(errors) == 1, errors
    for text in named:
        assert text in errors[0], errors[0]
    assert "What to do: " in errors[0]
    assert "Traceback" not in run.stderr
    assert not [m for m in run.messages if m["type"] == "RECORD"]
    assert box.et_api.requests == []
    assert box.acoustic_api is not None
    assert box.acoustic_api.requests == []


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("window_days", 0, "exacttarget.window_days"),
        ("window_days", 30, "exacttarget.window_days"),
        ("max_attempts", -1, "exacttarget.max_attempts"),
        ("timezone", "Mars/Olympus_Mons", "exacttarget.timezone"),
        ("file_port", 99999, "exacttarget.file_port"),
        ("sftp_known_hosts_file", MISSING, "exacttarget.sftp_known_hosts_file"),
        ("request_timeout_seconds", 0, "exacttarget.request_timeout_seconds"),
        ("poll_interval_seconds", -5, "exacttarget.poll_interval_seconds"),
        ("endpoint", "api.s4.exacttarget.com/integrate.aspx", "exacttarget.endpoint"),
        ("endpoint", "ftp://api.s4.exacttarget.com/", "exacttarget.endpoint"),
    ],
)
def test_a_bad_exacttarget_setting_stops_the_run_before_acoustic_syncs(
    both: Sandbox, tmp_path: Path, setting: str, value: Any, named: str
) -> None:
    config = both_config(both)
    config["exacttarget"][setting] = value
    assert_refused(both, run_tap(tmp_path / "run", config), "ExactTarget: ", named)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("sftp_port", 0, "acoustic.sftp_port"),
        ("api_host", "not a url", "acoustic.api_host"),
        ("timezone", "Europe/Atlantis", "acoustic.timezone"),
        ("sftp_known_hosts_file", MISSING, "acoustic.sftp_known_hosts_file"),
        ("max_attempts", 0, "acoustic.max_attempts"),
    ],
)
def test_a_bad_acoustic_setting_stops_the_run(
    both: Sandbox, tmp_path: Path, setting: str, value: Any, named: str
) -> None:
    config = both_config(both)
    config["acoustic"][setting] = value
    assert_refused(both, run_tap(tmp_path / "run", config), "Acoustic: ", named)


FUTURE = (date.today() + timedelta(days=3)).isoformat()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"exacttarget": "yes"}, "exacttarget"),
        ({"temp_dir": "/nonexistent/tap-tmp"}, "temp_dir"),
        ({"end_date": "2023-12-01"}, "end_date (2023-12-01) is before start_date"),
        ({"start_date": FUTURE, "end_date": None}, f"start_date ({FUTURE}) is in the future"),
        ({"start_date": "the first of May"}, "start_date"),
        ({"max_member_bytes": 0}, "max_member_bytes"),
        ({"exacttarget": None, "acoustic": None}, "no vendor is configured"),
    ],
)
def test_a_bad_top_level_setting_stops_the_run(
    both: Sandbox, tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    config = both_config(both)
    for key, value in change.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    assert_refused(both, run_tap(tmp_path / "run", config), "tap-emailtracking: ", named)


def test_a_value_of_the_wrong_type_is_one_line(both: Sandbox, tmp_path: Path) -> None:
    """The SDK's schema errors (several lines of its own) become one line of ours."""
    config = both_config(both)
    config["exacttarget"]["window_days"] = "seven"
    config["acoustic"]["sftp_host_key_check"] = "yes"
    run = run_tap(tmp_path / "run", config)
    assert_refused(
        both,
        run,
        "Config validation failed: ",
        "config['exacttarget']['window_days']",
        "config['acoustic']['sftp_host_key_check']",
    )


def test_unknown_keys_are_named_with_the_nearest_known_key(both: Sandbox, tmp_path: Path) -> None:
    config = both_config(both)
    config["end_dat"] = config["end_date"]
    config["exacttarget"]["pasword"] = "typo"
    config["acoustic"]["zzz_unheard_of"] = 1
    run = run_tap(tmp_path / "run", config)
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "| WARNING " in line]
    assert any("unknown setting end_dat is ignored; did you mean end_date?" in w for w in warnings)
    assert any(
        "unknown setting exacttarget.pasword is ignored; did you mean exacttarget.password?" in w
        for w in warnings
    )
    assert any("unknown setting acoustic.zzz_unheard_of is ignored" in w for w in warnings)


def test_a_misspelt_required_key_is_missing_and_named(both: Sandbox, tmp_path: Path) -> None:
    config = both_config(both)
    config["exacttarget"]["pasword"] = config["exacttarget"].pop("password")
    run = run_tap(tmp_path / "run", config)
    assert_refused(both, run, "'password' is a required property")
    assert "did you mean exacttarget.password?" in run.stderr


def test_a_vendor_error_mid_sync_is_one_line_without_traceback(
    both: Sandbox, tmp_path: Path
) -> None:
    """A vendor error mid-sync (wrong password): one ERROR line, no traceback, exit 1."""
    config = both_config(both)
    config["exacttarget"]["password"] = "not-the-password"
    run = run_tap(tmp_path / "run", config)
    assert run.returncode == 1
    errors = error_lines(run)
    assert len(errors) == 1, errors
    assert "check exacttarget.username and exacttarget.password" in errors[0]
    assert "Traceback" not in run.stderr


def test_unexpected_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Only the expected error family is shortened; a bug must show where it happened."""
    with caplog.at_level(logging.DEBUG, logger="tap-emailtracking"):
        codes = [
            cli._report(error)
            for error in (
                UnexpectedError("boom", vendor="ExactTarget", action="report it"),
                KeyError("x"),
                CorruptFileError("bad ZIP", vendor="ExactTarget", action="re-run"),
            )
        ]
    assert codes == [1, 1, 1]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.exc_info is not None for r in errors] == [True, True, False]
    assert errors[2].getMessage() == "ExactTarget: bad ZIP. What to do: re-run [CorruptFileError]"


def run_with_files(
    tmp_path: Path, box: Sandbox, *, config: str | None = None, **files: str | None
) -> tuple[TapRun, dict[str, Path]]:
    """Run the CLI with `--config` (and `--state`/`--catalog`) files holding the texts given.

    A text of None names a file that does not exist.
    """
    texts = {"config": config, **files}
    paths: dict[str, Path] = {}
    command = [sys.executable, "-m", "tap_emailtracking"]
    for option, text in texts.items():
        path = tmp_path / f"{option}.json"
        if option == "config" and text is None and len(texts) > 1:
            path.write_text(json.dumps(both_config(box)), encoding="utf-8")
        elif text is not None:
            path.write_text(text, encoding="utf-8")
        paths[option] = path
        command += [f"--{option}", str(path)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=tap_env(), check=False
    )
    return TapRun(done.returncode, done.stdout, done.stderr, parse_messages(done.stdout)), paths


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"start_date": "2024-01-01",}', "is not valid JSON: Illegal trailing comma"),
        ('{"start_date": "2024-01-01", "max_expansion_ratio": NaN}', "is not valid JSON: "),
        ('{"start_date": "2024-01-01",\n "max_field_bytes": Infinity}', "at line 2 column"),
        (None, "does not exist"),
    ],
)
def test_an_unreadable_config_file_is_one_line_naming_the_file(
    both: Sandbox, tmp_path: Path, text: str | None, named: str
) -> None:
    run, paths = run_with_files(tmp_path, both, config=text)
    assert_refused(both, run, f"the --config file {str(paths['config'])!r} ", named)
    assert "[ConfigurationError]" in run.stderr


@pytest.mark.parametrize("option", ["state", "catalog"])
def test_a_state_or_catalog_file_that_is_not_json_is_one_line_naming_it(
    both: Sandbox, tmp_path: Path, option: str
) -> None:
    run, paths = run_with_files(tmp_path, both, **{option: '{"bookmarks": [}'})
    assert_refused(both, run, f"the --{option} file {str(paths[option])!r} ", "at line 1 column 16")


@pytest.mark.parametrize("option", ["state", "catalog"])
def test_a_missing_state_or_catalog_file_is_a_usage_error(
    both: Sandbox, tmp_path: Path, option: str
) -> None:
    """click opens these files: a missing one is its one-line usage error, exit 2 (by design)."""
    run, paths = run_with_files(tmp_path, both, **{option: None})
    assert run.returncode == 2, run.stderr[-3000:]
    assert f"Error: Invalid value for '--{option}': '{paths[option]}': No such file" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert both.et_api.requests == []


@pytest.mark.parametrize(
    ("where", "setting", "value"),
    [
        ("top", "max_field_bytes", 1e30),
        ("top", "max_member_bytes", 2**63),
        ("top", "max_expansion_ratio", 1e300),
        ("acoustic", "marker_history_days", 10**12),
        ("acoustic", "job_deadline_seconds", 1e12),
        ("exacttarget", "max_attempts", 10**18),
        ("exacttarget", "request_timeout_seconds", 10**9),
    ],
)
def test_a_setting_beyond_its_upper_bound_stops_the_run(
    both: Sandbox, tmp_path: Path, where: str, setting: str, value: Any
) -> None:
    """Each numeric setting has an upper bound, checked at start (no overflow mid-sync)."""
    config = both_config(both)
    (config if where == "top" else config[where])[setting] = value
    named = setting if where == "top" else f"{where}.{setting}"
    assert_refused(both, run_tap(tmp_path / "run", config), named)
