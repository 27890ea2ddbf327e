"""What every export stream shares: unit-of-work bookmarks, schema-shaped records, honest STATE.

Vendor streams walk units of work (date windows, files) and commit each unit themselves: the
bookmark moves, and STATE is written, in `get_records` after the unit's last `yield` (code there
runs only once the SDK has written that record). So the SDK's per-record bookmarking, BATCH
output and child-stream machinery are switched off here, once, for every vendor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec
from singer_sdk import Stream
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from tap_emailtracking.writer import StateFlushingWriter

# RECORDs written within this many seconds of each other share one `time_extracted`.
EXTRACTED_AT_EVERY = 0.05
_monotonic = time.monotonic  # tests step it

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.vendors.spec import SourceSlot

ExportRecord: TypeAlias = dict[str, Any] | msgspec.Raw
"""What a vendor stream yields: a record, or a spooled record's JSON bytes (see spools.py)."""


@cache
def load_schema(package: ModuleType, name: str) -> dict[str, Any]:
    """A stream's JSON schema file (`<package>/<name>.json`).

    Handed to `Stream.__init__` as a dict rather than through a `StreamSchema` descriptor: the SDK
    reads the schema twice per record, and the descriptor re-resolves it on every read.
    """
    text = resources.files(package).joinpath(f"{name}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def write_state_now(tap: Tap) -> None:
    """Emit STATE now (skipped by the SDK when nothing changed)."""
    tap.state_writer.write_state(tap.state)


class ExportStream(Stream):
    """Base of every vendor stream: incremental by unit of work, records already schema-shaped."""

    # Parsers build records schema-shaped and JSON-ready: conformance would only cost time.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    # The vendor's source for this sync, shared by the vendor's streams (set by each vendor).
    source: SourceSlot[Any]

    def __init__(self, tap: Tap, schema: dict[str, Any]) -> None:
        super().__init__(tap, schema=schema)
        # Incremental by unit of work; the unit bookmark is kept by the vendor stream.
        self.forced_replication_method = "INCREMENTAL"
        # Decided on the first record: a writer, or False for the SDK's own pipeline.
        self._pass_through: StateFlushingWriter | Literal[False] | None = None
        self._extracted, self._extracted_until = utc_now(), 0.0

    @property
    def full_table(self) -> bool:
        """A catalog forced FULL_TABLE: ignore bookmarks and export everything again."""
        return self.replication_method == "FULL_TABLE"

    def commit(self, key: str, value: Any, *, then: Callable[[], None] | None = None) -> None:
        """Move this stream's bookmark and emit STATE now (call after a unit's last record).

        `then` runs between the two (the unit's job leaves the ledger there), so one STATE
        message carries both: a kill can never keep a committed unit's job, nor drop a job
        whose unit is not committed.
        """
        self.stream_state[key] = value
        if then is not None:
            then()
        write_state_now(self._tap)

    def pass_through_writer(self) -> StateFlushingWriter | None:
        """The writer to hand records to directly, or None when the SDK's pipeline must run.

        Records may skip the SDK's per-record pipeline when it would hand them on unchanged:
        every property selected, one stream map that is the identity (no `stream_maps` config,
        no flattening), and no type conformance. The pipeline's walk of the selection mask alone
        is a third of a sync's time on wide records.
        """
        if self._pass_through is None:
            maps = self.stream_maps
            writer = self._tap.message_writer
            unchanged = (
                len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and not maps[0].flattening_enabled
                and self.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
                and all(self.mask.values())
            )
            self._pass_through = (
                writer if unchanged and isinstance(writer, StateFlushingWriter) else False
            )
        return self._pass_through or None

    @override
    def _write_record_message(self, record: ExportRecord) -> None:
        """Write one RECORD, straight to the writer when `pass_through_writer` allows.

        Overrides a private SDK method (singer-sdk is pinned to 0.54.x in pyproject.toml);
        otherwise the SDK's own path runs, which deselects, conforms and maps (a spooled
        record's JSON is decoded for it first).
        """
        writer = self._pass_through or self.pass_through_writer()
        if writer is None:
            decoded = msgspec.json.decode(record) if isinstance(record, msgspec.Raw) else record
            super()._write_record_message(decoded)
            return
        writer.write_record(
            self.stream_maps[0].stream_alias,
            record,
            version=self._stream_version,
            time_extracted=self._extracted_at(),
        )
        self.state_manager.is_flushed = False

    def _extracted_at(self) -> datetime:
        """`time_extracted`, read from the clock at most every `EXTRACTED_AT_EVERY` seconds.

        The SDK asks the wall clock for every record: a few per cent of a sync on its own.
        """
        now = _monotonic()
        if now >= self._extracted_until:
            self._extracted, self._extracted_until = utc_now(), now + EXTRACTED_AT_EVERY
        return self._extracted

    @override
    def get_batch_config(self, config: Mapping[str, Any]) -> None:
        """Never BATCH (see `TapEmailTracking.capabilities`): RECORDs keep STATE honest."""
        return

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """No child streams: skip the SDK's per-record child-context machinery."""
        return ()

    @override
    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        """Bookmarks move per unit of work in `get_records`, never per record."""
