"""What every export stream shares: unit-of-work bookmarks, schema-shaped records, honest STATE.

Vendor streams walk units of work (date windows, files) and commit each unit themselves: the
bookmark moves, and STATE is written, in `get_records` after the unit's last `yield` (code there
runs only once the SDK has written that record). So the SDK's per-record bookmarking, BATCH
output and child-stream machinery are switched off here, once, for every vendor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from types import ModuleType
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.tap import TapEmailTracking


@cache
def load_schema(package: ModuleType, name: str) -> dict[str, Any]:
    """A stream's JSON schema file (`<package>/<name>.json`).

    Handed to `Stream.__init__` as a dict rather than through a `StreamSchema` descriptor: the SDK
    reads the schema twice per record, and the descriptor re-resolves it on every read.
    """
    text = resources.files(package).joinpath(f"{name}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class ExportStream(Stream):
    """Base of every vendor stream: incremental by unit of work, records already schema-shaped."""

    # Parsers build records schema-shaped and JSON-ready: conformance would only cost time.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapEmailTracking, schema: dict[str, Any]) -> None:
        super().__init__(tap, schema=schema)
        self.owner = tap
        # Incremental by unit of work; the unit bookmark is kept by the vendor stream.
        self.forced_replication_method = "INCREMENTAL"

    @property
    def full_table(self) -> bool:
        """A catalog forced FULL_TABLE: ignore bookmarks and export everything again."""
        return self.replication_method == "FULL_TABLE"

    def commit(self, key: str, value: Any) -> None:
        """Move this stream's bookmark and emit STATE now (call after a unit's last record)."""
        self.stream_state[key] = value
        self.owner.checkpoint()

    def get_batch_config(self, config: Mapping[str, Any]) -> None:
        """Never BATCH (see `TapEmailTracking.capabilities`): RECORDs keep STATE honest."""
        return

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """No child streams: skip the SDK's per-record child-context machinery."""
        return ()

    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        """Bookmarks move per unit of work in `get_records`, never per record."""
