"""The projector: applies stored events to the read tables, batch by batch, exactly once.

Each batch is one PostgreSQL transaction holding the rows it wrote and the new tracking
position, so a crash anywhere loses the whole batch or nothing, and the next start picks
up at the committed position. eventsourcing's ProjectionRunner commits once per event;
batching here is what lets the read side catch up at thousands of events per second.

A batch commits without waiting for its WAL to reach the disk (`synchronous_commit =
off`, for that transaction only; a commit waited for a disk flush per batch): a server
crash may lose the last batches committed, their rows and position together, and the
projector applies those events again. The event store's own commits still wait.

No stored event can stop the read side: a batch that fails because of an event is
applied again event by event, and an event that cannot be applied is skipped and
recorded (`skipped.py` has the rule).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from eventsourcing.persistence import Notification

from dspyops.aggregates.app.trace_context import trace_context_of
from dspyops.projections import skipped, tracking
from dspyops.projections.appliers import BatchApplier
from dspyops.projections.ddl import create_tables
from dspyops.projections.event_store import EventStore

log = logging.getLogger(__name__)

# A batch's span links to at most this many of the commands whose events it applied (the
# first ones met; the SDK's own limit per span is 128).
MAX_ORIGINS = 32


@dataclass(frozen=True)
class Lag:
    position: int
    head: int

    @property
    def events_behind(self) -> int:
        return max(self.head - self.position, 0)

    def as_dict(self) -> dict[str, int]:
        return {"position": self.position, "head": self.head, "lag": self.events_behind}


def application_name(read_schema: str) -> str:
    return f"dspyops-projector:{read_schema}"[:63]


class Projector:
    def __init__(
        self,
        database_url: str,
        *,
        event_store_schema: str,
        read_schema: str,
        batch_size: int = 1000,
    ) -> None:
        self.read_schema = read_schema
        self.batch_size = batch_size
        # The distinct trace contexts stored with the last batch's events (at most
        # MAX_ORIGINS): the traces of the commands that recorded them.
        self.origins: list[str] = []
        self.store = EventStore(database_url, event_store_schema)
        # Named per read schema so an operator can tell projectors apart in pg_stat_activity.
        self.conn = psycopg.connect(database_url, application_name=application_name(read_schema))
        try:
            with self.conn.transaction():
                tracking.lock(self.conn, read_schema)
                # What was done to a read schema an earlier layout made, for the log.
                self.upgrades = create_tables(self.conn, read_schema)
        except BaseException:
            self.close_quietly()
            raise

    def position(self) -> int:
        with self.conn.transaction():
            return tracking.read_position(self.conn, self.read_schema)

    def lag(self) -> Lag:
        return Lag(position=self.position(), head=self.store.max_position())

    def run_batch(self) -> int:
        """Apply the next batch of events; return how many were read (0: caught up)."""
        try:
            return self._batch(careful=False)
        except Exception as exc:
            if not skipped.is_the_events_fault(exc):
                raise
            # describe(): the server's DETAIL lines quote the refused values (user input).
            log.warning("a batch failed (%s); applying it event by event", skipped.describe(exc))
        return self._batch(careful=True)

    def _batch(self, *, careful: bool) -> int:
        self.origins = []
        with self.conn.transaction():
            tracking.lock(self.conn, self.read_schema)
            self.conn.execute("SET LOCAL synchronous_commit = off")
            position = tracking.read_position(self.conn, self.read_schema)
            notifications = self.store.after(position, self.batch_size)
            if not notifications:
                return 0
            applier = BatchApplier(self.conn, self.read_schema)
            if careful:
                self._one_by_one(applier, notifications)
            else:
                for notification in notifications:
                    event = self.store.decode(notification)
                    if event is not None:
                        applier.apply(event, notification.id)
                        self._origin(event)
                applier.flush()
            tracking.write_position(self.conn, self.read_schema, notifications[-1].id)
        return len(notifications)

    def _one_by_one(self, applier: BatchApplier, notifications: Sequence[Notification]) -> None:
        """Each event in its own savepoint: one that fails is rolled back and recorded."""
        for notification in notifications:
            try:
                with self.conn.transaction():
                    event = self.store.decode(notification)
                    if event is not None:
                        applier.apply(event, notification.id)
                        applier.flush()
                        self._origin(event)
            except Exception as exc:
                if not skipped.is_the_events_fault(exc):
                    raise
                skipped.record(self.conn, self.read_schema, notification, exc)
                log.error(
                    "projector skipped the event at position %d (%s): %s",
                    notification.id,
                    notification.topic.rsplit(":", 1)[-1],
                    skipped.describe(exc),
                )

    def _origin(self, event: object) -> None:
        traceparent, _ = trace_context_of(event)
        origins = self.origins
        if traceparent and len(origins) < MAX_ORIGINS and traceparent not in origins:
            origins.append(traceparent)

    def catch_up(self) -> int:
        total = 0
        while count := self.run_batch():
            total += count
        return total

    def close(self) -> None:
        self.conn.close()
        self.store.close()

    def close_quietly(self) -> None:
        """Close after a connection failure, when closing may itself fail."""
        with contextlib.suppress(Exception):
            self.close()
