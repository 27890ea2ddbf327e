"""Acoustic streams: every email event in one stream, its type a column.

One stream rather than one per type because a BEX file interleaves all types and is parsed once;
users choose their event types with the `event_types` setting (which also shapes the BEX job
definition). BEX commits file by file (`bex_files` marker); Raw Recipient Data Export commits
window by window (`next_window_start`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from tap_emailtracking.streams import ExportStream, load_schema
from tap_emailtracking.vendors.acoustic import schemas
from tap_emailtracking.vendors.acoustic.bex import FileMarker
from tap_emailtracking.windows import next_start

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.vendors.acoustic.export import AcousticExports
    from tap_emailtracking.vendors.spec import SourceSlot

FILE_BOOKMARK = "bex_files"
WINDOW_BOOKMARK = "next_window_start"


class AcousticEmailEventsStream(ExportStream):
    """Email events (send, open, click, bounce, opt-out, suppressed) of one Acoustic database."""

    name = "acoustic_email_events"
    primary_keys = ("event_id",)

    def __init__(self, tap: Tap, source: SourceSlot[AcousticExports]) -> None:
        super().__init__(tap, load_schema(schemas, "email_events"))
        self.source = source
        source.join(self)

    def window_bookmark(self) -> str | None:
        """The first day of Raw Recipient Data Export windows not fully emitted (None: all)."""
        value = None if self.full_table else self.stream_state.get(WINDOW_BOOKMARK)
        return str(value) if value else None

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """BEX files, or RRDE windows, each committed once all its records are out."""
        exports = self.source.get()
        try:
            yield from self._units(exports)
        finally:
            exports.close_site()

    def _units(self, exports: AcousticExports) -> Iterable[dict[str, Any]]:
        if exports.settings.export_mode == "bex":
            raw = None if self.full_table else self.stream_state.get(FILE_BOOKMARK)
            marker = FileMarker.from_state(raw, exports.settings.marker_history_days)
            pending = exports.pending_files(marker, stream=self.name)
            if marker.empty:  # files seen empty are never done by age (`FileMarker`)
                self.commit(FILE_BOOKMARK, marker.to_state())
            for file in pending:
                yield from exports.bex_records(file, stream=self.name)
                marker.mark_done(file)
                self.commit(FILE_BOOKMARK, marker.to_state())
            return
        for window, records in exports.raw_windows(stream=self.name):
            yield from records
            self.commit(
                WINDOW_BOOKMARK,
                next_start(window, exports.windows.today()).isoformat(),
                then=partial(exports.ledger.drop, window.key(), checkpoint=False),
            )
