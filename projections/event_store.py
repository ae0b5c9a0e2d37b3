"""Reading the event store: stored notifications in order, decoded to domain events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from dspyops.aggregates.handled import HandledCommand
from dspyops.aggregates.legacy_topics import LEGACY_TOPICS
from dspyops.bootstrap import open_store
from dspyops.projections.json_codec import FastJSONTranscoder

# Command bookkeeping, not domain state: skipped without being decoded, under its
# topic today and under the topics earlier layouts stored it with.
SKIPPED_TOPICS = frozenset(
    {get_topic(HandledCommand.Handled)}
    | {f"{old}.Handled" for old, cls in LEGACY_TOPICS.items() if cls is HandledCommand}
)


class EventStore:
    def __init__(self, database_url: str, schema: str) -> None:
        # The projector may start before any worker: it creates the (empty) event store
        # itself rather than crash, and then simply finds nothing to project yet.
        self.app = open_store(database_url, schema)
        # Decoding is most of reading events: the same transcodings, decoded with orjson
        # (json_codec). This store only reads, so encoding is never used.
        fast = FastJSONTranscoder()
        for transcoding in self.app.mapper.transcoder.names.values():  # type: ignore[attr-defined]
            fast.register(transcoding)
        self.app.mapper.transcoder = fast

    def after(self, position: int, limit: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=position, limit=limit, inclusive_of_start=False
        )

    def decode(self, notification: Notification) -> Any | None:
        if notification.topic in SKIPPED_TOPICS:
            return None
        return self.app.mapper.to_domain_event(notification)

    def max_position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def close(self) -> None:
        self.app.close()
