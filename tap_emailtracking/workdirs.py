"""Temporary folders for downloads and spools: one per vendor per run, cleaned even after a kill.

A normal exit removes the run's folder (a finalizer); a SIGKILL cannot, so folders carry their
owner's pid and the next run removes those whose process is gone (POSIX; elsewhere there is no
harmless way to probe a pid, and nothing is removed).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from pathlib import Path

LOGGER = logging.getLogger("tap_emailtracking.workdirs")
PREFIX = "tap-emailtracking-"


def remove_abandoned_workdirs(parent: Path) -> None:
    """Delete folders left by killed runs (their process no longer exists)."""
    if os.name != "posix":
        return
    for folder in parent.glob(f"{PREFIX}*-*-*"):
        pid_text = folder.name[len(PREFIX) :].split("-")[1]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            LOGGER.info("removing %s, left by a run that was killed", folder)
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue


def make_workdir(owner: object, vendor: str, temp_dir: str | None) -> Path:
    """A fresh folder `<temp>/tap-emailtracking-<vendor>-<pid>-<random>`, removed with `owner`."""
    remove_abandoned_workdirs(Path(temp_dir or tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{vendor}-{os.getpid()}-", dir=temp_dir))
    weakref.finalize(owner, shutil.rmtree, path, True)
    return path
