"""ExactTarget streams: one per record type found in the tracking export.

Every stream walks the same activity windows and commits each one on its own: its bookmark
(`next_window_start`) moves, and STATE is written, only after the last record of a window has been
emitted (the code after a generator's last `yield` runs only once the SDK has written that record).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_emailtracking.vendors.exacttarget import schemas
from tap_emailtracking.windows import next_start

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.tap import TapEmailTracking

BOOKMARK = "next_window_start"


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The JSON schema file of one stream (schemas/<kind>.json).

    Handed to `Stream.__init__` as a dict rather than through a `StreamSchema` descriptor: the SDK
    reads the schema twice per record, and the descriptor re-resolves it on every read.
    """
    text = resources.files(schemas).joinpath(f"{kind}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class ExactTargetStream(Stream):
    """A record type of the tracking export, windowed by activity date."""

    kind: ClassVar[str]
    # The parser builds records schema-shaped and JSON-ready: conformance would only cost time.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapEmailTracking) -> None:
        super().__init__(tap, schema=load_schema(self.kind))
        self.owner = tap
        # Incremental by export window; the window bookmark is kept by this class, not by a key.
        self.forced_replication_method = "INCREMENTAL"

    def bookmark(self) -> str | None:
        """The first day this stream has not fully emitted (None: start from start_date)."""
        if self.replication_method == "FULL_TABLE":
            return None
        value = self.stream_state.get(BOOKMARK)
        return str(value) if value else None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Walk the windows; commit each one once its records are all out."""
        exports = self.owner.exacttarget_exports()
        windows = exports.plan(self.bookmark())
        if windows:
            self.logger.info(
                "ExactTarget: %s: %d window(s) to export, %s to %s",
                self.name,
                len(windows),
                windows[0].start,
                windows[-1].end,
            )
        for window in windows:
            yield from exports.records(self.kind, window, stream=self.name)
            self.stream_state[BOOKMARK] = next_start(window, exports.today()).isoformat()
            exports.committed(self.kind, window)
            self.owner.checkpoint()
        self.owner.stream_finished(self.name)
        exports.finish_stream(self.kind)

    def get_batch_config(self, config: Mapping[str, Any]) -> None:
        """Never BATCH (see `TapEmailTracking.capabilities`): RECORDs keep STATE honest."""
        return

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """No child streams: skip the SDK's per-record child-context machinery."""
        return ()

    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        """Bookmarks move per window in `get_records`, never per record."""


def _stream(kind: str, keys: tuple[str, ...]) -> type[ExactTargetStream]:
    """Declare one stream class: its name, schema file and primary key."""
    return type(
        f"ExactTarget{kind.title().replace('_', '')}Stream",
        (ExactTargetStream,),
        {
            "name": f"exacttarget_{kind}",
            "kind": kind,
            "primary_keys": keys,
            "__doc__": f"ExactTarget {kind.replace('_', ' ')} from the tracking export.",
        },
    )


_SUBSCRIBER = ("member_id", "job_id", "subscriber_id", "list_id")

STREAM_TYPES: tuple[type[ExactTargetStream], ...] = (
    _stream("jobs", ("member_id", "job_id")),
    _stream("job_links", ("member_id", "job_id", "url", "name", "ordinal")),
    _stream("job_lists", ("member_id", "job_id", "list_id")),
    _stream("subscribers", _SUBSCRIBER),
    _stream("opens", (*_SUBSCRIBER, "opened_at", "ordinal")),
    _stream("clicks", (*_SUBSCRIBER, "clicked_at", "ordinal")),
    _stream("bounces", (*_SUBSCRIBER, "bounced_at", "ordinal")),
    _stream("unsubscribes", (*_SUBSCRIBER, "unsubscribed_at", "ordinal")),
    _stream("conversions", (*_SUBSCRIBER, "converted_at", "ordinal")),
    _stream("survey_responses", (*_SUBSCRIBER, "responded_at", "ordinal")),
)
