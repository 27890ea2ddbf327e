"""One lifecycle for every sandbox server: serve in a daemon thread, stop and join, `with`.

`Lifecycle` is the context manager over `start`/`stop` (the whole `Sandbox` uses it too);
`ThreadedServer` adds the thread and the order of the steps, so each server writes only what is
its own: how it binds, serves, is told to stop and cleans up.
"""

from __future__ import annotations

import threading
from types import TracebackType

from typing_extensions import Self, override

JOIN_TIMEOUT = 10.0


class Lifecycle:
    """`with thing:` starts it and stops it again, whatever happens inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ThreadedServer(Lifecycle):
    """A server on `host:port` (port 0 picks a free one) whose serving loop runs in a thread.

    `start` calls `_bind` (bind the socket if it can, set `port`), runs `_serve` in a daemon
    thread, then `_wait_listening` (return once clients can connect); `stop` calls `_shutdown`
    (make `_serve` return), joins the thread and calls `_cleanup`. Both are idempotent.
    """

    kind = "server"  # thread names: sandbox-<kind>-<port>

    def __init__(self, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._requested_port = port
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @override
    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self once clients can connect."""
        if self._thread is not None:
            return self
        self._bind()
        thread = threading.Thread(
            target=self._serve, name=f"sandbox-{self.kind}-{self.port}", daemon=True
        )
        self._thread = thread
        thread.start()
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    @override
    def stop(self) -> None:
        """End the serving loop, wait for its thread and release the socket."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._shutdown()
        finally:
            thread.join(JOIN_TIMEOUT)
            self._thread = None
            self._cleanup()

    # -- what each server supplies

    def _bind(self) -> None:
        """Prepare to serve (bind now if the library allows, and set `port`)."""

    def _serve(self) -> None:
        raise NotImplementedError

    def _wait_listening(self) -> None:
        """Return once the port is open (servers that bind in `_bind` are ready already)."""

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Release what is left once the serving thread has ended."""
