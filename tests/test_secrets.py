"""Secrets never leave: every byte of stdout and stderr of the real tap CLI is searched for them.

The sandbox's passwords are distinctive and hold XML specials (`&<>`), so a password that was
escaped into an XML envelope, form-encoded into a request body or quoted in JSON is caught in
every spelling. Successful syncs, failed logins, a vendor that echoes the password in its error,
a config value of the wrong type (config validation quotes values) and a config read from
environment variables are all checked, and so is every STATE message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape, quoteattr

import pytest

from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, parse_messages, run_tap, tap_env
from .test_exacttarget_flow import assert_matches_truth

WRONG_ET_PASSWORD = "Wr0ng-ET-guess&<x>\"'"
WRONG_FILE_PASSWORD = "Wr0ng-FILE-guess&<y>"
NUMBER_PASSWORD = 987654321
# Every secret in these tests starts with one of these: a partial leak is still a leak.
STEMS = ("S3cret-", "Wr0ng-")


def spellings(secret: str) -> set[str]:
    """The ways a secret could reach output: raw, XML/HTML-escaped, URL- and JSON-encoded."""
    return {
        secret,
        escape(secret),
        escape(secret, {'"': "&quot;", "'": "&apos;"}),
        quoteattr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }


def assert_no_secret(run: TapRun, *secrets: object) -> None:
    """No secret, in any spelling, anywhere in stdout, stderr or any STATE."""
    assert run.stdout or run.stderr, "nothing to search"
    outputs = {"stdout": run.stdout, "stderr": run.stderr}
    for index, state in enumerate(run.states):
        outputs[f"STATE #{index}"] = json.dumps(state)
    for secret in secrets:
        for spelling in spellings(str(secret)):
            for where, text in outputs.items():
                assert spelling not in text, f"secret {spelling!r} found in {where}"
    for stem in STEMS:
        for where, text in outputs.items():
            assert stem not in text, f"part of a secret ({stem!r}) found in {where}"


def secrets_of(sandbox: Sandbox) -> tuple[str, str]:
    return sandbox.credentials.et_password, sandbox.credentials.file_password


def test_the_secret_sandbox_uses_distinctive_passwords(secret_sandbox: Sandbox) -> None:
    """The search below is only meaningful if the passwords are distinctive and need escaping."""
    et_password, file_password = secrets_of(secret_sandbox)
    assert et_password.startswith(STEMS)
    assert file_password.startswith(STEMS)
    assert escape(et_password) != et_password


@pytest.mark.parametrize("protocol", ["sftp", "ftps"])
def test_a_whole_sync_leaks_no_secret(
    secret_sandbox: Sandbox, tmp_path: Path, protocol: str
) -> None:
    run = run_tap(tmp_path, secret_sandbox.tap_config(protocol))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(secret_sandbox, run)
    assert run.states
    assert_no_secret(run, *secrets_of(secret_sandbox))


def test_a_wrong_exacttarget_password_is_not_shown(secret_sandbox: Sandbox, tmp_path: Path) -> None:
    run = run_tap(tmp_path, secret_sandbox.tap_config(password=WRONG_ET_PASSWORD))
    assert run.returncode != 0
    assert "check exacttarget.username and exacttarget.password" in run.stderr
    assert_no_secret(run, WRONG_ET_PASSWORD, *secrets_of(secret_sandbox))


@pytest.mark.parametrize("protocol", ["sftp", "ftp"])
def test_a_wrong_file_password_is_not_shown(
    secret_sandbox: Sandbox, tmp_path: Path, protocol: str
) -> None:
    config = secret_sandbox.tap_config(protocol, file_password=WRONG_FILE_PASSWORD)
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert "the file site refused the login" in run.stderr
    assert run.states  # the batch id is in state: STATE is searched too
    assert_no_secret(run, WRONG_FILE_PASSWORD, *secrets_of(secret_sandbox))


def test_a_vendor_error_echoing_the_password_is_scrubbed(
    secret_sandbox: Sandbox, tmp_path: Path
) -> None:
    secret_sandbox.et_api.faults.echo_password_error = True
    run = run_tap(tmp_path, secret_sandbox.tap_config())
    assert run.returncode != 0
    assert "Tracking BulkAsync submit was refused" in run.stderr
    assert "with password ***" in run.stderr  # the vendor's words are kept, the value is not
    assert_no_secret(run, *secrets_of(secret_sandbox))


@pytest.mark.parametrize("setting", ["password", "file_password"])
def test_a_secret_of_the_wrong_type_is_not_quoted(
    secret_sandbox: Sandbox, tmp_path: Path, setting: str
) -> None:
    """Config validation quotes the offending value; for a secret it must not."""
    run = run_tap(tmp_path, secret_sandbox.tap_config(**{setting: NUMBER_PASSWORD}))
    assert run.returncode != 0
    assert f"config['exacttarget']['{setting}']" in run.stderr  # still says what is wrong
    assert_no_secret(run, NUMBER_PASSWORD, *secrets_of(secret_sandbox))


def run_with_env_config(workdir: Path, config: dict[str, Any]) -> TapRun:
    """Run `--config ENV` with every setting in TAP_EMAILTRACKING_* variables."""
    env = tap_env()
    env["TAP_EMAILTRACKING_EXACTTARGET"] = json.dumps(config["exacttarget"])
    env["TAP_EMAILTRACKING_START_DATE"] = config["start_date"]
    env["TAP_EMAILTRACKING_END_DATE"] = config["end_date"]
    done = subprocess.run(
        [sys.executable, "-m", "tap_emailtracking", "--config", "ENV"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=workdir,
        check=False,
    )
    return TapRun(done.returncode, done.stdout, done.stderr, parse_messages(done.stdout))


def test_config_from_environment_leaks_no_secret(secret_sandbox: Sandbox, tmp_path: Path) -> None:
    run = run_with_env_config(tmp_path, secret_sandbox.tap_config())
    assert run.returncode == 0, run.stderr[-3000:]
    assert "from env variable 'TAP_EMAILTRACKING_EXACTTARGET'" in run.stderr
    assert_matches_truth(secret_sandbox, run)
    assert_no_secret(run, *secrets_of(secret_sandbox))


def test_a_bad_secret_from_environment_is_not_quoted(
    secret_sandbox: Sandbox, tmp_path: Path
) -> None:
    config = secret_sandbox.tap_config(password=NUMBER_PASSWORD)
    run = run_with_env_config(tmp_path, config)
    assert run.returncode != 0
    assert "config['exacttarget']['password']" in run.stderr
    assert_no_secret(run, NUMBER_PASSWORD, *secrets_of(secret_sandbox))
