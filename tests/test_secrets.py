"""Secrets never leave: every byte of stdout and stderr of the real tap CLI is searched for them.

The sandbox's passwords are distinctive and hold XML specials (`&<>`), so a password that was
escaped into an XML envelope, form-encoded into a request body or quoted in JSON is caught in
every spelling. Successful syncs, failed logins, a vendor that echoes the password in its error,
a config value of the wrong type (config validation quotes values) and a config read from
environment variables are all checked, and so is every STATE message.

The hostile sandbox's secrets (both vendors) are full of characters every encoding changes
(`&<>"'%+/= `), and its endpoints can answer a proxy's HTML page that echoes the whole request
(form-encoded XML envelope, OAuth form, bearer header), as WAF pages do.
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape, quoteattr

import pytest

from vendor_sandbox.sandbox import Sandbox, SandboxCredentials

from .conftest import TapRun, parse_messages, run_tap, tap_env
from .test_exacttarget_flow import assert_matches_truth

WRONG_ET_PASSWORD = "Wr0ng-ET-guess&<x>\"'"
WRONG_FILE_PASSWORD = "Wr0ng-FILE-guess&<y>"
NUMBER_PASSWORD = 987654321
# Every secret in these tests starts with one of these: a partial leak is still a leak.
STEMS = ("S3cret-", "Wr0ng-")


HOSTILE = SandboxCredentials(
    et_username="et-user",
    et_password="S3cret-ET &<pass\"word'>%2B+/=x",
    file_username="files-user",
    file_password="S3cret-FILE &<p\"w'>%+/= y",
    acoustic_client_id="acoustic-client",
    acoustic_client_secret="S3cret-CS &<\"'>%41+/= z",
    acoustic_refresh_token="S3cret-RT/+= &<'\">%%",
    acoustic_ftp_password="S3cret-FTP &<\"'>%+/=",
)
# Users a secret may be paired with in HTTP Basic auth (`user:secret`, base64).
USERS = ("et-user", "files-user", "acoustic-client", "admin@example.com", "oauth")


def base64_forms(text: str) -> set[str]:
    raw = text.encode()
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    return {standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")}


def spellings(secret: str) -> set[str]:
    """The ways a secret could reach output: raw, XML/HTML-escaped, numeric character
    references, URL-, JSON- and base64-encoded, and the stacks a request echo shows."""
    xml = escape(secret, {'"': "&quot;", "'": "&apos;"})
    forms = {
        secret,
        escape(secret),
        xml,
        quoteattr(secret)[1:-1],
        html.escape(secret),
        "".join(c if c.isalnum() else f"&#{ord(c)};" for c in secret),
        "".join(c if c.isalnum() else f"&#x{ord(c):x};" for c in secret),
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        quote_plus(escape(secret)),  # an XML envelope, form-encoded
        quote(escape(secret), safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(xml)[1:-1],
        repr(secret)[1:-1],
        *base64_forms(secret),
    }
    for user in USERS:
        forms |= base64_forms(f"{user}:{secret}")
    return forms


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


def all_secrets_of(sandbox: Sandbox) -> list[str]:
    """Every secret the sandbox knows: both vendors' credentials and every access token."""
    found = all_secrets_of_credentials(sandbox.credentials)
    if sandbox.acoustic_api is not None:
        found += sandbox.acoustic_api.issued_tokens
    return found


@pytest.fixture
def hostile_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """Both vendors, with secrets full of characters that every encoding changes."""
    with Sandbox(tmp_path / "sandbox", credentials=HOSTILE) as box:
        yield box


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


def test_the_hostile_secrets_hold_every_special_character() -> None:
    """The search below is only meaningful if every encoding changes every secret."""
    for secret in all_secrets_of_credentials(HOSTILE):
        assert secret.startswith(STEMS)
        assert set("&<>\"'%+/= ") <= set(secret), secret
        assert secret not in spellings(secret) - {secret}


def all_secrets_of_credentials(creds: SandboxCredentials) -> list[str]:
    return [
        creds.et_password,
        creds.file_password,
        creds.acoustic_client_secret,
        creds.acoustic_refresh_token,
        creds.acoustic_ftp_password,
    ]


@pytest.mark.parametrize("sftp_login", ["oauth", "password"])
def test_a_whole_sync_of_both_vendors_with_hostile_secrets_leaks_nothing(
    hostile_sandbox: Sandbox, tmp_path: Path, sftp_login: str
) -> None:
    config = hostile_sandbox.tap_config(vendors=("exacttarget", "acoustic"))
    config["acoustic"] = hostile_sandbox.acoustic_config(sftp_login=sftp_login)
    run = run_tap(tmp_path / "run", config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_matches_truth(hostile_sandbox, run)
    assert run.records["acoustic_email_events"]
    assert_no_secret(run, *all_secrets_of(hostile_sandbox))


def test_an_exacttarget_page_echoing_the_request_leaks_nothing(
    hostile_sandbox: Sandbox, tmp_path: Path
) -> None:
    hostile_sandbox.et_api.faults.html_page = True
    run = run_tap(tmp_path / "run", hostile_sandbox.tap_config())
    assert run.returncode != 0
    assert "answered an HTML page" in run.stderr
    assert "%3Cpassword%3E***REDACTED***%3C%2Fpassword%3E" in run.stderr  # the excerpt is there
    assert_no_secret(run, *all_secrets_of(hostile_sandbox))


@pytest.mark.parametrize("kind", ["token", "rest"])
def test_an_acoustic_page_echoing_the_request_leaks_nothing(
    hostile_sandbox: Sandbox, tmp_path: Path, kind: str
) -> None:
    """The token request's form (client secret, refresh token) or a call's bearer token."""
    api = hostile_sandbox.acoustic_api
    assert api is not None
    api.faults.html_pages = {kind}
    run = run_tap(tmp_path / "run", hostile_sandbox.tap_config(vendors=("acoustic",)))
    assert run.returncode != 0
    assert "answered an HTML page" in run.stderr
    assert "***REDACTED***" in run.stderr
    if kind == "rest":
        assert api.issued_tokens  # a token was handed out, echoed back, and must not show
    assert_no_secret(run, *all_secrets_of(hostile_sandbox))
