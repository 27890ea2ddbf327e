"""What a vendor tells the tap about itself (`VendorSpec`), and what the tap hands it back.

The tap knows vendors only through their specs (`vendors/registry.py` lists them): it builds the
config schema, checks settings and builds streams from them. A vendor's source (its session for
one sync: clients, job ledger, planned windows) is built from a neutral `SyncContext` the first
time a stream asks for it, so discovery never opens a connection and vendor code never calls the
tap. The streams of a vendor join its `SourceSlot` when they are built, so a source that feeds
many streams from one export can ask them directly which are still to run.

When the first stream of a sync asks for its source, the tap calls `SourceSlot.start` for every
vendor with a selected stream: a source with export jobs (`JobSource`) plans its units and submits
its first jobs then, so every vendor's jobs run side by side from the first seconds of the sync
(`jobs.JobScheduler`, one per sync). Discovery builds no source and starts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from tap_emailtracking.jobs import JobScheduler
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
    jobs: JobScheduler


@runtime_checkable
class JobSource(Protocol):
    """A source whose units run export jobs: it starts them when the sync starts."""

    def start_jobs(self) -> None:
        """Plan every unit the selected streams need and submit (or resume) the first jobs."""
        ...


class SourceSlot(Generic[SourceT]):
    """A vendor's source for one sync, built on first use; its streams join it when built."""

    def __init__(
        self,
        build: Callable[[Sequence[ExportStream]], SourceT],
        first_use: Callable[[], None] = lambda: None,
    ) -> None:
        self._build = build
        self._first_use = first_use
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
        """The source, built the first time a stream needs it (which starts the sync's jobs)."""
        if self._source is None:
            self._source = self._build(self.streams)
            self._first_use()
        return self._source

    def start(self) -> None:
        """The sync starts: a source with export jobs starts them if any stream is selected."""
        if any(stream.selected for stream in self.streams):
            source = self.get()
            if isinstance(source, JobSource):
                source.start_jobs()


@dataclass(frozen=True)
class VendorSpec(Generic[SettingsT, SourceT]):
    """One vendor, as the tap sees it.

    `key` is its settings object in the config; `schema` and `description` describe that object;
    `read_settings` checks it and returns the typed settings; `streams` are its stream classes,
    each built as `stream_type(tap, slot)`; `configured_streams` adds stream classes built from
    the settings (impact.com's reports, like tap-klaviyo's); `build_source` makes its source for
    one sync.
    """

    key: str
    name: str
    description: str
    schema: dict[str, Any]
    read_settings: Callable[[Mapping[str, Any]], SettingsT]
    streams: Sequence[Callable[[Tap, SourceSlot[SourceT]], ExportStream]]
    build_source: Callable[[SettingsT, SyncContext], SourceT]
    configured_streams: (
        Callable[[SettingsT], Sequence[Callable[[Tap, SourceSlot[SourceT]], ExportStream]]] | None
    ) = None

    def property_schema(self) -> dict[str, Any]:
        """The vendor's entry in the tap's config schema (null, like absent, disables it)."""
        return {**self.schema, "type": ["object", "null"], "description": self.description}

    def discover(
        self,
        tap: Tap,
        settings: Callable[[], SettingsT],
        context: Callable[[Sequence[ExportStream]], SyncContext],
        first_use: Callable[[], None] = lambda: None,
    ) -> list[ExportStream]:
        """The vendor's streams, sharing one source built when the first of them needs it.

        `first_use` is called once the source is built (the tap starts every vendor's jobs).
        """
        slot: SourceSlot[SourceT] = SourceSlot(
            lambda streams: self.build_source(settings(), context(streams)), first_use
        )
        types = list(self.streams)
        if self.configured_streams is not None:
            types += self.configured_streams(settings())
        return [stream_type(tap, slot) for stream_type in types]
