"""Temporary folders for downloads and spools: one per vendor per run, cleaned even after a kill.

A normal exit removes the run's folder (a finalizer); a SIGKILL cannot, so the next run removes
the folders of dead runs. A pid cannot tell a dead run in a container: the tap is PID 1 there (or
the same pid every run), so a killed run's pid looks alive again. Each folder therefore has a lock
file beside it, `<folder>.lock`, locked (`flock`) before the folder exists and held for the life
of the process; the kernel releases it when the process dies, however it dies. A folder whose lock
can be taken is abandoned. Folders of older versions have no lock file: their pid decides.
Elsewhere than POSIX nothing is locked or removed (no harmless probe exists).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

if sys.platform != "win32":
    import fcntl

LOGGER = logging.getLogger("tap_emailtracking.workdirs")
PREFIX = "tap-emailtracking-"
LOCK_SUFFIX = ".lock"
_OURS: set[Path] = set()  # folders this process made (their locks are held here)


def _try_lock(lock: Path) -> int | None:
    """An open descriptor holding `lock` exclusively, or None when another process holds it."""
    if sys.platform == "win32":
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _abandoned_without_lock(folder: Path) -> bool:
    """A folder of an older version (no lock file): abandoned when its pid is gone or is ours."""
    pid_text = folder.name[len(PREFIX) :].split("-")[1]
    if not pid_text.isdigit():
        return False
    # Our own pid on a folder we did not make: a run before us in the same pid (a container).
    return int(pid_text) == os.getpid() or not _pid_alive(int(pid_text))


def _remove(folder: Path, lock: Path) -> None:
    LOGGER.info("removing %s, left by a run that was killed", folder)
    shutil.rmtree(folder, ignore_errors=True)
    lock.unlink(missing_ok=True)


def remove_abandoned_workdirs(parent: Path) -> None:
    """Delete folders (and lock files) left by killed runs: their lock is free."""
    if sys.platform == "win32":
        return
    for folder in parent.glob(f"{PREFIX}*-*-*"):
        if folder in _OURS or folder.suffix == LOCK_SUFFIX or not folder.is_dir():
            continue
        lock = folder.with_name(folder.name + LOCK_SUFFIX)
        if not lock.exists():
            if _abandoned_without_lock(folder):
                _remove(folder, lock)
            continue
        fd = _try_lock(lock)
        if fd is not None:
            try:
                _remove(folder, lock)
            finally:
                os.close(fd)
    for lock in parent.glob(f"{PREFIX}*-*-*{LOCK_SUFFIX}"):
        # A lock whose folder is gone: a run killed while it made or removed its folder.
        folder = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
        if folder.exists():
            continue
        fd = _try_lock(lock)
        if fd is not None:
            lock.unlink(missing_ok=True)
            os.close(fd)


def _release(path: Path, lock: Path | None, fd: int | None) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if lock is not None:
        lock.unlink(missing_ok=True)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    _OURS.discard(path)


def _locked_folder(prefix: str, parent: str | None) -> tuple[Path, Path | None, int | None]:
    """Make `<prefix><random>.lock`, lock it, then make the folder beside it."""
    if sys.platform == "win32":
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent)), None, None
    while True:
        fd, lock_name = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=parent)
        lock = Path(lock_name)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else holds it
        path = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # pragma: no cover - a random name taken by a lockless folder
            lock.unlink(missing_ok=True)
            os.close(fd)
            continue
        return path, lock, fd


def make_workdir(owner: object, vendor: str, temp_dir: str | None) -> Path:
    """A fresh folder `<temp>/tap-emailtracking-<vendor>-<pid>-<random>`, removed with `owner`.

    Its lock stays held until `owner` goes (or the process ends, or dies).
    """
    remove_abandoned_workdirs(Path(temp_dir or tempfile.gettempdir()))
    path, lock, fd = _locked_folder(f"{PREFIX}{vendor}-{os.getpid()}-", temp_dir)
    _OURS.add(path)
    weakref.finalize(owner, _release, path, lock, fd)
    return path
