"""A result that is missing or refused for safety forgets its job; the next run submits it afresh.

The real tap CLI against the sandbox: the vendor announces a result file that is not on the file
site (it expired), or a name that would leave the folder. Each run fails loudly, the job leaves
state at once, and the next run (fault gone) submits a new job and delivers the exact data set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vendor_sandbox.sandbox import Sandbox

from .conftest import run_tap
from .test_acoustic_raw_and_resume import LEDGER as ACOUSTIC_LEDGER
from .test_acoustic_raw_and_resume import assert_raw_matches_truth, raw_config
from .test_exacttarget_faults import (
    FIRST_STREAM,
    assert_resubmitted_first_window,
    error_message,
    ledger_of,
    recover,
)

ACOUSTIC_STREAM = "acoustic_email_events"


@pytest.fixture
def acoustic(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", exacttarget=None) as box:
        yield box


# -- ExactTarget: the Batch Inquire file name ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["sftp", "ftp"])
def test_exacttarget_missing_result_forgets_the_batch(
    sandbox: Sandbox, tmp_path: Path, protocol: str
) -> None:
    sandbox.et_api.faults.delete_result = True
    config = sandbox.tap_config(protocol)
    failed = run_tap(tmp_path / "failed", config)
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (")
    assert f"the file {sandbox.et_api.files[0].name!r} is not in the folder" in message
    assert "the job that announced it is forgotten and a new one is submitted" in message
    assert "RemoteFileMissingError" in failed.stderr
    assert ledger_of(failed) == {}

    sandbox.et_api.faults.delete_result = False
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed, config)
    assert_resubmitted_first_window(sandbox, since)


# No local file can hold a name over 255 bytes: refused, not retried as a network error.
TOO_LONG = "a" * 5000 + ".zip"
TOO_LONG_UTF8 = "é" * 128 + ".zip"  # 260 bytes in 132 characters


@pytest.mark.parametrize(
    "name", ["../../etc/cron.d/x.zip", "/etc/passwd", "a\\..\\..\\b.zip", TOO_LONG, TOO_LONG_UTF8]
)
def test_exacttarget_refused_result_name_forgets_the_batch(
    sandbox: Sandbox, tmp_path: Path, name: str
) -> None:
    sandbox.et_api.faults.announce_name = name
    failed = run_tap(tmp_path / "failed", sandbox.tap_config())
    message = error_message(failed)
    assert message.startswith(f"ExactTarget / {FIRST_STREAM} (")
    assert f"refused the result file name {name!r}" in message
    assert "a new one is submitted" in message
    assert "RefusedFileNameError" in failed.stderr
    assert ledger_of(failed) == {}
    assert sandbox.download_faults.downloads_started == 0  # nothing was fetched

    sandbox.et_api.faults.announce_name = None
    since = len(sandbox.et_api.requests)
    recover(sandbox, tmp_path, failed)
    assert_resubmitted_first_window(sandbox, since)


# -- Acoustic RRDE: the FILE_PATH ------------------------------------------------------------------


def rrde_failure(box: Sandbox, tmp_path: Path) -> tuple[str, dict[str, object]]:
    """Run once against the fault: the ERROR line and the state left behind (job forgotten)."""
    failed = run_tap(tmp_path / "failed", raw_config(box))
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if "What to do: " in line]
    assert errors, failed.stderr[-3000:]
    assert f"Acoustic / {ACOUSTIC_STREAM} (" in errors[0]
    state = failed.last_state or {}
    assert state["bookmarks"][ACOUSTIC_LEDGER] == {}
    assert box.acoustic_api.rrde_submissions == 1  # type: ignore[union-attr]
    return errors[0], state


def heal(box: Sandbox, tmp_path: Path, state: dict[str, object]) -> None:
    """The next run submits the window again and delivers every row."""
    healed = run_tap(tmp_path / "healed", raw_config(box), state=state)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert box.acoustic_api.rrde_submissions == 8  # type: ignore[union-attr]  # 1 + the 7 days
    assert_raw_matches_truth(box, healed)


def test_acoustic_rrde_missing_result_forgets_the_job(acoustic: Sandbox, tmp_path: Path) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    api.faults.rrde_delete_result = True
    error, state = rrde_failure(acoustic, tmp_path)
    assert "is not in the folder '/download'" in error
    assert "the job that announced it is forgotten and a new one is submitted" in error
    api.faults.rrde_delete_result = False
    heal(acoustic, tmp_path, state)


@pytest.mark.parametrize(
    "path",
    ["../../home/admin/.ssh/x.zip", "/download/..\\x.zip", "/etc/x.zip", f"/download/{TOO_LONG}"],
)
def test_acoustic_rrde_refused_file_path_forgets_the_job(
    acoustic: Sandbox, tmp_path: Path, path: str
) -> None:
    api = acoustic.acoustic_api
    assert api is not None
    api.faults.rrde_announce_path = path
    error, state = rrde_failure(acoustic, tmp_path)
    assert "refused the result file name" in error
    assert acoustic.download_faults.downloads_started == 0
    api.faults.rrde_announce_path = None
    heal(acoustic, tmp_path, state)
