"""What a vendor tells the tap about itself (`VendorSpec`), and what the tap hands it back.

The tap knows vendors only through their specs (`vendors/registry.py` lists them): it builds the
config schema, checks settings and builds streams from them. A vendor's source (its session for
one sync: clients, job ledger, planned windows) is built from a neutral `SyncContext` the first
time a stream asks for it, so discovery never opens a connection and vendor code never calls the
tap. The streams of a vendor join its `SourceSlot` when they are built, so a source that feeds
many streams from one export can ask them directly which are still to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tap_emailtracking.limits import Limits

if TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_emailtracking.streams import ExportStream

SourceT = TypeVar("SourceT")
SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class SyncContext:
    """What any vendor's source needs from the sync, and nothing of the tap itself."""

    state: dict[str, Any]
    checkpoint: Callable[[], None]
    start_date: date
    end_date: date | None
    temp_dir: str | None
    limits: Limits
    streams: Sequence[ExportStream]


class SourceSlot(Generic[SourceT]):
    """A vendor's source for one sync, built on first use; its streams join it when built."""

    def __init__(self, build: Callable[[Sequence[ExportStream]], SourceT]) -> None:
        self._build = build
        self._source: SourceT | None = None
        self.streams: list[ExportStream] = []

    def join(self, stream: ExportStream) -> None:
        """A stream of this vendor exists (the source may ask it about its progress)."""
        self.streams.append(stream)

    @property
    def built(self) -> bool:
        """A stream has asked for the source in this sync."""
        return self._source is not None

    def get(self) -> SourceT:
        """The source, built the first time a stream needs it."""
        if self._source is None:
            self._source = self._build(self.streams)
        return self._source


@dataclass(frozen=True)
class VendorSpec(Generic[SettingsT, SourceT]):
    """One vendor, as the tap sees it.

    `key` is its settings object in the config; `schema` and `description` describe that object;
    `read_settings` checks it and returns the typed settings; `streams` are its stream classes,
    each built as `stream_type(tap, slot)`; `build_source` makes its source for one sync.
    """

    key: str
    name: str
    description: str
    schema: dict[str, Any]
    read_settings: Callable[[Mapping[str, Any]], SettingsT]
    streams: Sequence[Callable[[Tap, SourceSlot[SourceT]], ExportStream]]
    build_source: Callable[[SettingsT, SyncContext], SourceT]

    def property_schema(self) -> dict[str, Any]:
        """The vendor's entry in the tap's config schema (null, like absent, disables it)."""
        return {**self.schema, "type": ["object", "null"], "description": self.description}

    def discover(
        self,
        tap: Tap,
        settings: Callable[[], SettingsT],
        context: Callable[[Sequence[ExportStream]], SyncContext],
    ) -> list[ExportStream]:
        """The vendor's streams, sharing one source built when the first of them needs it."""
        slot: SourceSlot[SourceT] = SourceSlot(
            lambda streams: self.build_source(settings(), context(streams))
        )
        return [stream_type(tap, slot) for stream_type in self.streams]
