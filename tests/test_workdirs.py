"""Work folders of killed runs are removed by the next run, even when the pid in the name is alive.

In a container the tap is PID 1 every run, so a pid cannot tell a killed run's folder from a live
one; the lock file beside each folder can (the kernel frees it when its process dies). Real
processes hold the locks here: this test process, child processes and a SIGKILLed tap.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tap_emailtracking.workdirs import LOCK_SUFFIX, PREFIX, make_workdir, remove_abandoned_workdirs
from vendor_sandbox.sandbox import Sandbox

from .conftest import REPO, run_tap, run_tap_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock and pid probes are POSIX")

HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def left_folder(parent: Path, name: str, *, lock: bool) -> tuple[Path, Path]:
    """A folder as a run leaves it (a partial download inside), with or without its lock file."""
    folder = parent / name
    folder.mkdir()
    (folder / "export.zip").write_bytes(b"PK partial")
    lock_file = folder.with_name(folder.name + LOCK_SUFFIX)
    if lock:
        lock_file.touch()
    return folder, lock_file


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path], None]]:
    """Start a child process that holds the lock of a file until the test ends."""
    children: list[subprocess.Popen[str]] = []

    def hold(lock: Path) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(lock)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"

    yield hold
    for child in children:
        child.communicate("")  # closes stdin: the child ends and its lock goes with it


def test_a_free_lock_means_abandoned_even_when_the_pid_is_alive(tmp_path: Path) -> None:
    # Our own pid: the pid probe says "alive", as it does for PID 1 in a container.
    folder, lock = left_folder(tmp_path, f"{PREFIX}et-{os.getpid()}-abc", lock=True)
    remove_abandoned_workdirs(tmp_path)
    assert not folder.exists()
    assert not lock.exists()


def test_a_held_lock_means_alive_whatever_the_pid(
    tmp_path: Path, lock_holder: Callable[[Path], None]
) -> None:
    folder, lock = left_folder(tmp_path, f"{PREFIX}et-{dead_pid()}-abc", lock=True)
    lock_holder(lock)
    remove_abandoned_workdirs(tmp_path)
    assert folder.exists()
    assert lock.exists()


def test_folders_of_older_versions_fall_back_to_the_pid(
    tmp_path: Path, lock_holder: Callable[[Path], None]
) -> None:
    dead, _ = left_folder(tmp_path, f"{PREFIX}et-{dead_pid()}-abc", lock=False)
    live, _ = left_folder(tmp_path, f"{PREFIX}et-{os.getppid()}-def", lock=False)
    # Our pid on a folder this process did not make: a run before us with the same pid.
    same_pid, _ = left_folder(tmp_path, f"{PREFIX}acoustic-{os.getpid()}-ghi", lock=False)
    remove_abandoned_workdirs(tmp_path)
    assert not dead.exists()
    assert live.exists()
    assert not same_pid.exists()


def test_a_lock_file_without_its_folder_is_removed_when_free(
    tmp_path: Path, lock_holder: Callable[[Path], None]
) -> None:
    free = tmp_path / f"{PREFIX}et-{os.getpid()}-abc{LOCK_SUFFIX}"
    held = tmp_path / f"{PREFIX}et-{os.getpid()}-def{LOCK_SUFFIX}"
    free.touch()
    held.touch()
    lock_holder(held)
    remove_abandoned_workdirs(tmp_path)
    assert not free.exists()
    assert held.exists()  # its run is making (or removing) its folder right now


class Owner:
    """Stands for an export object: the folder lives as long as it does."""


def sweep_in_another_process(parent: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from tap_emailtracking.workdirs import remove_abandoned_workdirs; "
            "remove_abandoned_workdirs(Path(sys.argv[1]))",
            str(parent),
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_live_folder_is_locked_for_its_owners_life(tmp_path: Path) -> None:
    owner = Owner()
    folder = make_workdir(owner, "et", str(tmp_path))
    lock = folder.with_name(folder.name + LOCK_SUFFIX)
    assert folder.is_dir()
    assert lock.exists()
    assert folder.name.startswith(f"{PREFIX}et-{os.getpid()}-")
    sweep_in_another_process(tmp_path)
    remove_abandoned_workdirs(tmp_path)  # this process too: it holds the lock itself
    assert folder.is_dir()
    del owner
    gc.collect()
    assert not folder.exists()
    assert not lock.exists()


def test_a_killed_tap_leaves_a_folder_the_next_run_removes_though_its_pid_is_alive(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    config = {**sandbox.tap_config(), "temp_dir": str(temp)}
    killed = run_tap_until(
        tmp_path / "killed", config, stop_on_log=lambda line: ": downloading " in line
    )
    assert killed.returncode != 0
    left = [p for p in temp.iterdir() if p.is_dir()]
    assert len(left) == 1, left
    # Give it a pid that is alive now (ours), as a container's next run has the same pid.
    vendor = left[0].name[len(PREFIX) :].split("-")[0]
    reused = temp / f"{PREFIX}{vendor}-{os.getpid()}-killed"
    left[0].rename(reused)
    (temp / (left[0].name + LOCK_SUFFIX)).rename(temp / (reused.name + LOCK_SUFFIX))

    again = run_tap(tmp_path / "again", config, killed.last_state)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"removing {reused}, left by a run that was killed" in again.stderr
    assert list(temp.iterdir()) == []  # and the run's own folder went at its end
