"""Mailkit misbehaving on request: a clear error naming Mailkit and the function (or a retried
recovery), a non-zero exit, and state that resumes to the full, exact data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vendor_sandbox.mailkit.data import BOUNCES, MESSAGES, RESPONSES
from vendor_sandbox.sandbox import Sandbox, SandboxCredentials

from .conftest import TapRun, run_tap
from .test_mailkit_flow import RAW, assert_equals_truth, config


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", acoustic=None, pinpointe=None) as sandbox:
        yield sandbox


def error_line(run: TapRun) -> str:
    lines = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert lines, run.stderr[-3000:]
    return lines[-1]


def test_a_wrong_md5_says_where_to_find_the_api_id_and_md5_code(
    box: Sandbox, tmp_path: Path
) -> None:
    box.mailkit_api.faults.unauthorized = True
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    line = error_line(run)
    assert "Mailkit" in line
    assert '"Unauthorized"' in line
    assert "mailkit.client_id and mailkit.client_md5" in line
    assert "Profile / Integration / API settings" in line
    assert len(box.mailkit_api.requests) == 1  # never retried
    assert not any(run.records.get(stream) for stream in RAW)


def test_a_disallowed_ip_says_to_allow_this_machine(box: Sandbox, tmp_path: Path) -> None:
    box.mailkit_api.faults.disallowed_ip = True
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    line = error_line(run)
    assert "Disallowed IP 127.0.0.1" in line
    assert "Allowed IP addresses" in line


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("error_on", "Temporary failure, try again"),
        ("truncate_on", "not JSON"),
        ("html_on", "an HTML page"),
    ],
)
def test_a_bad_answer_on_a_later_page_fails_naming_the_function_and_keeps_earlier_pages(
    box: Sandbox, tmp_path: Path, fault: str, words: str
) -> None:
    getattr(box.mailkit_api.faults, fault)[MESSAGES] = 3
    bad = run_tap(tmp_path / "bad", config(box))
    assert bad.returncode == 1
    line = error_line(bad)
    assert "Mailkit / mailkit_messages" in line
    assert "mailkit.report.raw.messages" in line
    assert words in line
    got = bad.records["mailkit_messages"]
    # Two pages out, the third refused: 250 rows, then 249 (the second page starts with the
    # first page's last row, which is not emitted twice).
    assert len(got) == 250 + 249
    assert bad.last_state["bookmarks"]["mailkit_messages"]["last_ids"] == {
        "all": got[-1]["id_send_message"]
    }
    again = run_tap(tmp_path / "again", config(box), state=bad.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_equals_truth(box, bad, again, streams=RAW)


def test_an_object_without_error_status_is_never_taken_for_the_end_of_the_data(
    box: Sandbox, tmp_path: Path
) -> None:
    box.mailkit_api.faults.error_answer = {}
    box.mailkit_api.faults.error_on = {BOUNCES: 1}
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 1
    assert "an object where a list of rows was expected" in error_line(run)


def test_a_connection_dropped_mid_page_is_asked_again(box: Sandbox, tmp_path: Path) -> None:
    box.mailkit_api.faults.drop_on = {RESPONSES: 2}
    box.mailkit_api.faults.drop_after_bytes = 5000
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run, streams=RAW)
    starts = [c["parameters"].get("ID_log") for c in box.mailkit_api.calls(RESPONSES)]
    assert starts[1] == starts[2]  # the dropped page, asked again from the same id


def test_server_errors_and_429s_are_retried_with_backoff(box: Sandbox, tmp_path: Path) -> None:
    box.mailkit_api.faults.http_errors = [500, 429]
    run = run_tap(tmp_path / "run", config(box))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_equals_truth(box, run)
    assert [r["status"] for r in box.mailkit_api.requests[:3]] == [500, 429, 200]
    assert "failed with HTTP 429 (attempt 2 of 3); retrying" in run.stderr


def test_the_md5_key_never_appears_in_any_output(tmp_path: Path) -> None:
    md5 = "9f86d081884c7d659a2feaa0c55ad015"
    creds = SandboxCredentials(mailkit_client_md5=md5)
    with Sandbox(tmp_path / "box", acoustic=None, pinpointe=None, credentials=creds) as box:
        box.mailkit_api.faults.error_on = {RESPONSES: 2}
        failed = run_tap(tmp_path / "failed", config(box))
        refused = run_tap(tmp_path / "refused", config(box, client_md5=md5.upper()))
    assert (failed.returncode, refused.returncode) == (1, 1)
    for run in (failed, refused):
        for spelling in (md5, md5.upper()):
            assert spelling not in run.stdout
            assert spelling not in run.stderr
