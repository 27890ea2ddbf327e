"""ExactTarget streams: one per record type found in the tracking export.

Every stream walks the same activity windows and commits each one on its own: its bookmark
(`next_window_start`) moves, and STATE is written, only after the last record of a window has been
emitted (the code after a generator's last `yield` runs only once the SDK has written that record).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from typing_extensions import override

from tap_emailtracking.streams import ExportRecord, ExportStream, load_schema
from tap_emailtracking.vendors.exacttarget import schemas
from tap_emailtracking.windows import next_start

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.vendors.exacttarget.export import ExactTargetExports
    from tap_emailtracking.vendors.spec import SourceSlot

BOOKMARK = "next_window_start"


class ExactTargetStream(ExportStream):
    """A record type of the tracking export, windowed by activity date."""

    kind: ClassVar[str]

    def __init__(self, tap: Tap, source: SourceSlot[ExactTargetExports]) -> None:
        super().__init__(tap, load_schema(schemas, self.kind))
        self.source = source
        self.finished = False
        source.join(self)

    def bookmark(self) -> str | None:
        """The first day this stream has not fully emitted (None: start from start_date)."""
        if self.full_table:
            return None
        value = self.stream_state.get(BOOKMARK)
        return str(value) if value else None

    @override
    def get_records(self, context: Context | None) -> Iterable[ExportRecord]:  # type: ignore[override]
        """Walk the windows; commit each one once its records are all out."""
        exports = self.source.get()
        windows = exports.windows.plan(self.bookmark())
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
            self.commit(
                BOOKMARK,
                next_start(window, exports.windows.today()).isoformat(),
                then=partial(exports.committed, self.kind, window),
            )
        self.finished = True  # the fan-out writes no more spools for it
        exports.finish_stream(self.kind)


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
