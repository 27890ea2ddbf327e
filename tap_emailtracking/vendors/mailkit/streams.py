"""Mailkit streams: raw bounces, messages and responses by last id; campaigns and their sends.

Raw streams keep one bookmark per filter set (`last_ids`: `all`, or `ID_message=…;ID_send=…`),
so a changed filter starts from the first row instead of reusing another filter's bookmark; the
bookmarks of filters no longer configured are kept (and logged), in case they come back.
Campaigns and sends are read in full each run (keyed, so targets upsert).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from tap_emailtracking.streams import ExportStream, load_schema
from tap_emailtracking.vendors.mailkit import schemas
from tap_emailtracking.vendors.mailkit.export import RAW_FUNCTIONS, filter_key, filter_sets

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_emailtracking.vendors.mailkit.export import MailkitExports
    from tap_emailtracking.vendors.spec import SourceSlot

BOOKMARK = "last_ids"


class MailkitStream(ExportStream):
    """A Mailkit stream; `kind` names its schema file."""

    kind: ClassVar[str]

    def __init__(self, tap: Tap, source: SourceSlot[MailkitExports]) -> None:
        super().__init__(tap, load_schema(schemas, self.kind))
        self.source = source
        source.join(self)


class RawStream(MailkitStream):
    """One raw function, walked per filter set from its bookmark; committed page by page."""

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        exports = self.source.get()
        last_ids: dict[str, Any] = (
            {} if self.full_table else dict(self.stream_state.get(BOOKMARK) or {})
        )
        sets = filter_sets(exports.settings)
        keys = {filter_key(filters) for filters in sets}
        for old in sorted(set(last_ids) - keys):
            self.logger.info(
                "Mailkit: %s: bookmark of filter %s kept (not configured now)", self.name, old
            )
        for filters in sets:
            key = filter_key(filters)
            after = last_ids.get(key)
            for page in exports.raw_pages(
                self.kind, filters, None if after is None else int(after), stream=self.name
            ):
                yield from page.records
                last_ids[key] = page.last_id
                self.commit(BOOKMARK, dict(last_ids))


class BouncesStream(RawStream):
    """mailkit.report.raw.bounces: undelivered messages."""

    name = "mailkit_bounces"
    kind = "bounces"
    primary_keys = (RAW_FUNCTIONS["bounces"].id_column,)


class MessagesStream(RawStream):
    """mailkit.report.raw.messages: every message sent."""

    name = "mailkit_messages"
    kind = "messages"
    primary_keys = (RAW_FUNCTIONS["messages"].id_column,)


class ResponsesStream(RawStream):
    """mailkit.report.raw.responses: opens, clicks and unsubscribe answers (`type`)."""

    name = "mailkit_responses"
    kind = "responses"
    primary_keys = (RAW_FUNCTIONS["responses"].id_column,)


class CampaignsStream(MailkitStream):
    """mailkit.campaigns.list, in full each run."""

    name = "mailkit_campaigns"
    kind = "campaigns"
    primary_keys = ("id_message",)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        yield from self.source.get().campaigns(stream=self.name)


class SendsStream(MailkitStream):
    """mailkit.report.campaign per campaign: one row per send with its counts."""

    name = "mailkit_sends"
    kind = "sends"
    primary_keys = ("id_send",)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        yield from self.source.get().sends(stream=self.name)


STREAM_TYPES: tuple[type[MailkitStream], ...] = (
    CampaignsStream,
    SendsStream,
    BouncesStream,
    MessagesStream,
    ResponsesStream,
)
