"""Download ahead: fetch file i+1 in a background thread while the caller reads file i.

A standing export (Acoustic BEX) is a run of files read one after another; downloading each only
when its turn comes leaves the network idle while a file is parsed and the parser idle while one
is fetched. Here exactly one download runs ahead, on one worker thread, so the file site is still
used by one thread at a time and at most two files sit on disk. A download's error is raised in
the caller's thread when it reaches that file, in order, after every earlier file was read. When
the caller leaves the `with` block early (an error, a closed generator), the download in flight
is told to stop at its next progress report and its partial file is removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

from tap_emailtracking.transports.files import ProgressCallback

_Item = TypeVar("_Item")

Download = Callable[[_Item, Path, ProgressCallback], object]


class _StoppedError(Exception):
    """Raised inside a download the caller no longer wants."""


class DownloadAhead(Generic[_Item]):
    """Local copies of `items`, in order, each downloaded while the one before it is read.

    Use as a context manager around the loop: leaving it stops the download running ahead.
    """

    def __init__(
        self,
        items: Sequence[_Item],
        *,
        download: Download[_Item],
        local_path: Callable[[_Item], Path],
    ) -> None:
        self._items = items
        self._download = download
        self._local_path = local_path
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="download-ahead")
        self._ahead: tuple[Path, Future[None]] | None = None
        self._current: Path | None = None

    def _fetch(self, item: _Item, path: Path) -> None:
        def check(done: int, size: int | None) -> None:
            if self._stop.is_set():
                raise _StoppedError

        self._download(item, path, check)

    def __enter__(self) -> DownloadAhead[_Item]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the download in flight, wait for it, remove every local file still here."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for path in (self._current, self._ahead[0] if self._ahead else None):
            if path is not None:
                path.unlink(missing_ok=True)
        self._current = self._ahead = None

    def __iter__(self) -> Iterator[tuple[_Item, Path]]:
        """(item, local file) pairs; a file is removed once the caller moves past it."""
        items = self._items
        for index, item in enumerate(items):
            path, future = self._ahead or self._start(item)
            self._ahead, self._current = None, path
            try:
                future.result()  # the download's own error, raised here, in order
                if index + 1 < len(items):
                    self._ahead = self._start(items[index + 1])
                yield item, path
            finally:
                path.unlink(missing_ok=True)
                self._current = None

    def _start(self, item: _Item) -> tuple[Path, Future[None]]:
        path = self._local_path(item)
        return path, self._pool.submit(self._fetch, item, path)
