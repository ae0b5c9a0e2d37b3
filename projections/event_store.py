"""Reading the event store: stored notifications in order, decoded to domain events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from psycopg import sql

from dspyops.aggregates.app import DspyOps
from dspyops.aggregates.app.persistence import eventsourcing_env
from dspyops.aggregates.handled import HandledCommand

# Command bookkeeping, not domain state: skipped without being decoded.
SKIPPED_TOPICS = frozenset({get_topic(getattr(HandledCommand, "Handled"))})  # noqa: B009


class EventStore:
    def __init__(self, database_url: str, schema: str) -> None:
        # The projector may start before any worker: it creates the (empty) event store
        # itself rather than crash, and then simply finds nothing to project yet.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        self.app = DspyOps(env=eventsourcing_env(database_url, schema=schema))

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
