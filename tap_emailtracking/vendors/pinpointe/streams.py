"""Pinpointe streams: lists, segments, tags and sends; their members and each send's activity.

Replication, per stream (README and docs/pinpointe.md say what a target should do):

* lists, segments, tags: read in full each run (small; keyed by id, so targets upsert).
* newsletter sends: from the last send read, less `activity_lookback_days`.
* list subscribers: incremental by the day a subscriber was added (`startdate`/`enddate` of
  GetListSubscribersAsync), per list; today, not being over, is read again next run. Status changes
  of earlier subscribers are not seen: select FULL_TABLE for a full snapshot.
* segment and tag subscribers: a snapshot each run (the calls offer no date filter), every row
  stamped with its job's `snapshot_at`. A snapshot interrupted by a failure or a kill is finished
  by the next run (units already emitted are not exported again).
* newsletter activity: one job per send, sends by start time, re-reading the sends of the last
  `activity_lookback_days` (opens and clicks keep arriving after a send).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from tap_emailtracking.jobs import Unit
from tap_emailtracking.streams import ExportStream, load_schema
from tap_emailtracking.vendors.pinpointe import schemas
from tap_emailtracking.vendors.pinpointe.export import SUBSCRIBER_OPTIONS, send_order
from tap_emailtracking.windows import DateWindow, next_start

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.vendors.pinpointe.export import PinpointeExports
    from tap_emailtracking.vendors.spec import SourceSlot

UTC = timezone.utc


class PinpointeStream(ExportStream):
    """A Pinpointe stream; `kind` names its schema file."""

    kind: ClassVar[str]

    def __init__(self, tap: Tap, source: SourceSlot[PinpointeExports]) -> None:
        super().__init__(tap, load_schema(schemas, self.kind))
        self.source = source
        source.join(self)


class ListingStream(PinpointeStream):
    """Lists, segments or tags: every one, each run."""

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        yield from self.source.get().listing(self.kind, stream=self.name)


class ListsStream(ListingStream):
    """Every list of the account."""

    name = "pinpointe_lists"
    kind = "lists"
    primary_keys = ("list_id",)


class SegmentsStream(ListingStream):
    """Every segment of the account."""

    name = "pinpointe_segments"
    kind = "segments"
    primary_keys = ("segment_id",)


class TagsStream(ListingStream):
    """Every tag of the account (shared tags included)."""

    name = "pinpointe_tags"
    kind = "tags"
    primary_keys = ("tag_id",)


def _lookback_floor(exports: PinpointeExports, last: object) -> date:
    """The first day of sends to read: the last send read less the lookback, or start_date."""
    if not last:
        return exports.start_date
    day = datetime.fromisoformat(str(last)).astimezone(UTC).date()
    return max(exports.start_date, day - timedelta(days=exports.settings.activity_lookback_days))


class NewsletterSendsStream(PinpointeStream):
    """One row per newsletter send; incremental by start time, less the lookback."""

    name = "pinpointe_newsletter_sends"
    kind = "newsletter_sends"
    primary_keys = ("stat_id",)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        exports = self.source.get()
        last = None if self.full_table else self.stream_state.get("last_send_started_at")
        sends = exports.sends(_lookback_floor(exports, last), stream=self.name)
        yield from sends
        if sends:
            self.commit("last_send_started_at", sends[-1]["started_at"])


class ExportJobStream(PinpointeStream):
    """A stream whose units are async export jobs; it plans them and commits each in turn."""

    def __init__(self, tap: Tap, source: SourceSlot[PinpointeExports]) -> None:
        super().__init__(tap, source)
        self._plan: list[Unit] | None = None

    def plan(self, exports: PinpointeExports) -> list[Unit]:
        """This run's units, in order (planned once per sync)."""
        if self._plan is None:
            self._plan = self.plan_units(exports)
        return self._plan

    def plan_units(self, exports: PinpointeExports) -> list[Unit]:
        """The units this run needs, from the stream's state and the ledger."""
        raise NotImplementedError

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        exports = self.source.get()
        exports.pipeline()  # plans every stream's units (this one's too)
        units = self.plan(exports)
        self.begin(units)
        for unit in units:
            yield from exports.records(unit, stream=self.name)
            self.commit_unit(unit, partial(exports.ledger.drop, unit.key, checkpoint=False))
        self.end()

    def begin(self, units: list[Unit]) -> None:
        """Before the first unit (nothing by default)."""

    def commit_unit(self, unit: Unit, then: Any) -> None:
        """A unit's records are all out: move the bookmark, drop its job, in one STATE."""
        raise NotImplementedError

    def end(self) -> None:
        """After the last unit (nothing by default)."""


def _ids(
    configured: tuple[str, ...] | None, records: list[dict[str, Any]], column: str
) -> list[str]:
    return list(configured) if configured is not None else [str(r[column]) for r in records]


class ListSubscribersStream(ExportJobStream):
    """Members of each list, by the day they were added (`added_since` per list)."""

    name = "pinpointe_list_subscribers"
    kind = "list_subscribers"
    primary_keys = ("subscriber_id", "list_id")

    @override
    def plan_units(self, exports: PinpointeExports) -> list[Unit]:
        if "lists" not in exports.settings.subscriber_exports:
            return []
        since = {} if self.full_table else dict(self.stream_state.get("added_since") or {})
        today = exports.now().astimezone(UTC).date()
        last = today if exports.end_date is None else min(exports.end_date, today)
        units = []
        lists = exports.listing("lists", stream=self.name)
        for list_id in _ids(exports.settings.list_ids, lists, "list_id"):
            entry = exports.ledger.get(f"list:{list_id}") or {}
            start = str(entry.get("startdate") or since.get(list_id) or exports.start_date)
            end = str(entry.get("enddate") or (last + timedelta(days=1)).isoformat())
            start_day, end_day = date.fromisoformat(start), date.fromisoformat(end)
            if start_day >= end_day:
                continue
            options = {
                "startdate": f"{start_day:%Y%m%d}",
                "enddate": f"{end_day:%Y%m%d}",
            }
            units.append(
                exports.unit(
                    "lists",
                    list_id,
                    f"list {list_id} (added {start} to {end_day - timedelta(days=1)})",
                    stream=self.name,
                    options={**SUBSCRIBER_OPTIONS, **options},
                    info={"startdate": start, "enddate": end},
                )
            )
        return units

    @override
    def commit_unit(self, unit: Unit, then: Any) -> None:
        list_id = unit.key.split(":", 1)[1]
        since = dict(self.stream_state.get("added_since") or {})
        # The next day to read: the day after the range, unless that range reached today (the
        # day is not over: it is read again).
        last_day = date.fromisoformat(str(unit.info["enddate"])) - timedelta(days=1)
        today = datetime.now(UTC).date()
        since[list_id] = next_start(DateWindow(last_day, last_day), today).isoformat()
        self.commit("added_since", since, then=then)


class SnapshotStream(ExportJobStream):
    """Members of each segment or tag: a snapshot each run, finished by the next if cut short."""

    subscriber_kind: ClassVar[str]
    id_setting: ClassVar[str]
    id_column: ClassVar[str]

    @override
    def plan_units(self, exports: PinpointeExports) -> list[Unit]:
        if self.subscriber_kind not in exports.settings.subscriber_exports:
            return []
        snapshot = None if self.full_table else self.stream_state.get("snapshot")
        done = set(snapshot.get("done") or []) if isinstance(snapshot, dict) else set()
        records = exports.listing(self.subscriber_kind, stream=self.name)
        ids = _ids(getattr(exports.settings, self.id_setting), records, self.id_column)
        extra = (
            {"format": exports.settings.segment_file_format}
            if self.subscriber_kind == "segments"
            else {}
        )
        word = self.subscriber_kind.rstrip("s")
        return [
            exports.unit(
                self.subscriber_kind,
                unit_id,
                f"{word} {unit_id}",
                stream=self.name,
                options={**SUBSCRIBER_OPTIONS, **extra},
            )
            for unit_id in ids
            if unit_id not in done
        ]

    @override
    def begin(self, units: list[Unit]) -> None:
        snapshot = self.stream_state.get("snapshot")
        if self.full_table or not isinstance(snapshot, dict):
            started = datetime.now(UTC).isoformat(timespec="seconds")
            self.stream_state["snapshot"] = {"started_at": started, "done": []}

    @override
    def commit_unit(self, unit: Unit, then: Any) -> None:
        snapshot = dict(self.stream_state["snapshot"])
        snapshot["done"] = [*snapshot.get("done", []), unit.key.split(":", 1)[1]]
        self.commit("snapshot", snapshot, then=then)

    @override
    def end(self) -> None:
        snapshot = self.stream_state.pop("snapshot", None) or {}
        self.commit("last_snapshot_at", snapshot.get("started_at"))


class SegmentSubscribersStream(SnapshotStream):
    """Members of each segment."""

    name = "pinpointe_segment_subscribers"
    kind = "segment_subscribers"
    primary_keys = ("subscriber_id", "segment_id")
    subscriber_kind = "segments"
    id_setting = "segment_ids"
    id_column = "segment_id"


class TagSubscribersStream(SnapshotStream):
    """Members of each tag."""

    name = "pinpointe_tag_subscribers"
    kind = "tag_subscribers"
    primary_keys = ("subscriber_id", "tag_id")
    subscriber_kind = "tags"
    id_setting = "tag_ids"
    id_column = "tag_id"


class NewsletterActivityStream(ExportJobStream):
    """Opens and clicks per contact per send, one job per send, sends in start order."""

    name = "pinpointe_newsletter_activity"
    kind = "newsletter_activity"
    primary_keys = ("stat_id", "subscriber_id", "event_type", "event_at", "ordinal")

    @override
    def plan_units(self, exports: PinpointeExports) -> list[Unit]:
        last = None if self.full_table else self.stream_state.get("last_send")
        started = last.get("started_at") if isinstance(last, dict) else None
        sends = exports.sends(_lookback_floor(exports, started), stream=self.name)
        if isinstance(last, dict) and exports.settings.activity_lookback_days == 0:
            # No lookback: continue after the last send read (ties on start broken by stat id).
            mark = send_order(last)
            sends = [send for send in sends if send_order(send) > mark]
        return [
            exports.unit(
                "activity",
                str(send["stat_id"]),
                f"send {send['stat_id']} (started {send['started_at']})",
                stream=self.name,
                info={"started_at": send["started_at"]},
            )
            for send in sends
        ]

    @override
    def commit_unit(self, unit: Unit, then: Any) -> None:
        started_at = str(unit.info["started_at"])
        self.commit(
            "last_send", {"started_at": started_at, "stat_id": unit.key.split(":", 1)[1]}, then=then
        )


STREAM_TYPES: tuple[type[PinpointeStream], ...] = (
    ListsStream,
    SegmentsStream,
    TagsStream,
    NewsletterSendsStream,
    ListSubscribersStream,
    SegmentSubscribersStream,
    TagSubscribersStream,
    NewsletterActivityStream,
)
