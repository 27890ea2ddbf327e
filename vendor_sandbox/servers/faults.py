"""Download and listing faults shared by the sandbox file servers.

One object can be handed to the SFTP and the FTP server alike; tests arm it, run a download and
read the counters to prove the client resumed instead of starting over, or make a listing hostile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class DownloadFaults:
    """Cut the next `drop_times` downloads after `drop_after_bytes` bytes; count what happened.

    Servers call `record_download` once per download (SFTP: the first read of a handle; FTP: a
    RETR of an existing file) and `take_drop` to learn whether that download is to be cut.
    All access goes through a lock because servers run in their own threads.
    """

    drop_after_bytes: int | None = None
    drop_times: int = 0
    # A hostile server: every folder listing (SFTP, FTP MLSD and NLST) also shows these names as
    # regular files that do not exist (`..`, `../x.csv`, ...).
    listing_extra: list[str] = field(default_factory=list)
    downloads_started: int = 0
    resumed_downloads: int = 0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def take_drop(self) -> int | None:
        """Return the byte count after which this download is cut, or None; uses one drop."""
        with self._lock:
            if self.drop_after_bytes is None or self.drop_times <= 0:
                return None
            self.drop_times -= 1
            return self.drop_after_bytes

    def record_download(self, *, offset: int) -> None:
        """Count a download that starts at `offset` (> 0 means the client resumed)."""
        with self._lock:
            self.downloads_started += 1
            if offset > 0:
                self.resumed_downloads += 1

    def arm(self, drop_after_bytes: int, times: int = 1) -> None:
        """Cut the next `times` downloads after `drop_after_bytes` bytes."""
        with self._lock:
            self.drop_after_bytes = drop_after_bytes
            self.drop_times = times

    def reset(self) -> None:
        """Disarm and zero the counters, so one server can serve many tests."""
        with self._lock:
            self.drop_after_bytes = None
            self.drop_times = 0
            self.listing_extra = []
            self.downloads_started = 0
            self.resumed_downloads = 0
