"""Answers of the wrong kind, through the real tap CLI: named as such, never misread or acted on.

The sandbox's endpoints answer HTTP 200 with a blocking proxy's HTML page (one that echoes the
request, as WAF pages do) or with JSON of an unexpected shape. Each run exits non-zero with one
error line that says the vendor answered HTML (or what shape it had), quotes a short excerpt
without secrets, and names the setting to check; no write request follows a misread answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vendor_sandbox.acoustic.api import AcousticApi
from vendor_sandbox.sandbox import Sandbox

from .conftest import TapRun, run_tap
from .test_redirects import error_line

HTML = "answered an HTML page (a proxy, login or maintenance page?)"


def excerpt_of(message: str) -> str:
    """The quoted excerpt of an error line."""
    assert message.count('"') >= 2, message
    return message.split('"', 1)[1].rsplit('"', 1)[0]


def writes(api: AcousticApi) -> list[dict[str, Any]]:
    return [
        r for r in api.requests if r["method"] in ("POST", "PUT", "DELETE") and r["kind"] == "rest"
    ]


@pytest.fixture
def org_without_definition(tmp_path: Path) -> Iterator[tuple[Sandbox, AcousticApi]]:
    """An org with no BEX definition, and a config allowed to create one."""
    with Sandbox(tmp_path / "sandbox", exacttarget=None, acoustic_bex=None) as box:
        assert box.acoustic_api is not None
        yield box, box.acoustic_api


def acoustic_run(box: Sandbox, workdir: Path, mode: str = "bex") -> TapRun:
    return run_tap(workdir, box.tap_config(vendors=("acoustic",), acoustic_mode=mode))


def test_an_html_page_from_the_exacttarget_api(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.et_api.faults.html_page = True
    run = run_tap(tmp_path, sandbox.tap_config())
    message = error_line(run)
    assert message.startswith(
        "ExactTarget / exacttarget_bounces: Tracking BulkAsync submit " + HTML
    )
    assert "where XML was expected" in message
    quoted = excerpt_of(message)
    assert quoted.startswith("Blocked qf=xml&xml=%3C%3Fxml")  # tags dropped, whitespace collapsed
    assert len(quoted) <= 200
    assert "%3Cpassword%3E***REDACTED***%3C%2Fpassword%3E" in quoted
    assert sandbox.credentials.et_password not in run.stderr
    assert "What to do: check exacttarget.endpoint" in message
    assert sandbox.et_api.submissions == 0


def test_an_html_page_from_the_token_endpoint(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        assert box.acoustic_api is not None
        box.acoustic_api.faults.html_pages = {"token"}
        run = acoustic_run(box, tmp_path / "run")
        creds = box.credentials
    message = error_line(run)
    assert message.startswith("Acoustic / acoustic_email_events: OAuth token request " + HTML)
    assert "where JSON was expected" in message
    assert "create a new refresh token" not in run.stderr  # not mistaken for a refusal
    assert "check acoustic.api_host (or acoustic.pod)" in message
    quoted = excerpt_of(message)
    assert "client_secret=***REDACTED***&refresh_token=***REDACTED***" in quoted
    for secret in (creds.acoustic_client_secret, creds.acoustic_refresh_token):
        assert secret not in run.stderr


def test_an_html_page_for_the_definition_list_creates_nothing(
    org_without_definition: tuple[Sandbox, AcousticApi], tmp_path: Path
) -> None:
    box, api = org_without_definition
    config = box.tap_config(vendors=("acoustic",))
    assert config["acoustic"]["manage_job_definition"] is True
    api.faults.html_pages = {"rest"}
    run = run_tap(tmp_path / "run", config)
    message = error_line(run)
    assert "BEX job definition list " + HTML in message
    assert "no BEX job definition exists" not in run.stderr
    assert [(r["method"], r["operation"]) for r in api.requests if r["kind"] == "rest"] == [
        ("GET", "html_page")
    ]
    assert writes(api) == []
    assert api.definition_posts == 0
    quoted = excerpt_of(message)
    assert "Authorization: Bearer ***REDACTED***" in quoted  # the echoed access token
    for token in api.issued_tokens:
        assert token not in run.stderr


@pytest.mark.parametrize(
    ("answer", "shape"),
    [
        ({"status": "ok"}, "JSON of an unexpected shape"),
        ("maintenance", "JSON of an unexpected shape"),
        ([["not", "a", "definition"]], "JSON of an unexpected shape"),
        ([{"contactSourceId": "DB", "channels": "Email"}], "without an id"),
    ],
)
def test_a_definition_list_of_the_wrong_shape_creates_nothing(
    org_without_definition: tuple[Sandbox, AcousticApi],
    tmp_path: Path,
    answer: Any,
    shape: str,
) -> None:
    box, api = org_without_definition
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        answer[0]["contactSourceId"] = box.tap_config(vendors=("acoustic",))["acoustic"][
            "contact_source_id"
        ]
    api.faults.definition_list_answer = answer
    run = run_tap(tmp_path / "run", box.tap_config(vendors=("acoustic",)))
    message = error_line(run)
    assert "BEX job definition list answered " in message
    assert shape in message
    assert "check acoustic.api_host (or acoustic.pod)" in message
    assert writes(api) == []


def test_a_definition_with_misshapen_channels_is_not_updated(tmp_path: Path) -> None:
    """An existing definition whose channels cannot be read is named, not overwritten."""
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        api = box.acoustic_api
        assert api is not None
        stored = api.definitions[0]
        api.faults.definition_list_answer = [{**stored, "channels": [{"eventTypes": "Open"}]}]
        config = box.tap_config(
            vendors=("acoustic",), acoustic_overrides={"job_frequency_hours": 8}
        )
        config["acoustic"]["manage_job_definition"] = True
        run = run_tap(tmp_path / "run", config)
        message = error_line(run)
        assert "a job definition whose eventTypes is not a list of objects" in message
        assert writes(api) == []
        assert api.definition_puts == 0


def test_an_html_page_from_the_xml_api_submits_nothing(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        api = box.acoustic_api
        assert api is not None
        api.faults.html_pages = {"xml"}
        run = acoustic_run(box, tmp_path / "run", mode="raw_recipient_data")
        message = error_line(run)
        assert "XML API RawRecipientDataExport " + HTML in message
        assert "where XML was expected" in message
        assert api.rrde_submissions == 0
        quoted = excerpt_of(message)
        assert quoted.startswith("Blocked Authorization: Bearer ***REDACTED*** xml=")
        for token in api.issued_tokens:
            assert token not in run.stderr
