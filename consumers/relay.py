"""The outbox relay: every event stored in PostgreSQL goes to the events topic, in store order.

At least once: the tracked position moves only after Kafka acknowledged the whole batch,
so a crash between the two publishes the tail of the last batch again (consumers
deduplicate on the envelope id, which is the event's store position). One relay is
active per event store: a PostgreSQL advisory lock elects it, the others wait.

An event stored with its command's trace context (`aggregates.app.trace_context`) goes
out with it, as results do: the envelope's `traceparent`/`tracestate` extensions and the
record headers of the same names, so a consumer of the events topic continues the trace
of the command that recorded the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from pydantic_core import to_jsonable_python

from dspyops import metrics
from dspyops.aggregates.app.trace_context import TRACEPARENT_KEY, TRACESTATE_KEY, trace_context_of
from dspyops.bootstrap import create_schema
from dspyops.consumers.records import Outgoing
from dspyops.consumers.transient import is_transient
from dspyops.events.envelope import (
    EVENT_TYPE_PREFIX,
    SUBJECT_FIELDS,
    Envelope,
    trace_extensions,
)
from dspyops.events.topics import Topics

log = logging.getLogger(__name__)


# Advisory locks are per database, and event stores are per schema: the lock that elects
# the one active relay of an event store is keyed by its schema, so the relays of two
# stores in one database (two deployments, or tests side by side) never wait for each other.
def relay_lock_key(schema: str, relay: str = "") -> int:
    """A stable signed 64-bit key for `schema`'s relay lock (pg_try_advisory_lock(bigint));
    `relay` names another relay of the same store (the results relay's is "results")."""
    name = f"dspyops:relay:{schema}" + (f":{relay}" if relay else "")
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def become_leader(try_lead: Callable[[], bool]) -> None:
    """Returns once `try_lead` (a blocking lock attempt, run in a thread) took the lock.
    Another process's relay holds it meanwhile; this one takes over when that one dies."""
    for _ in itertools.count():
        if await asyncio.to_thread(try_lead):
            return
        await asyncio.sleep(1.0)


class Lease:
    """A PostgreSQL session advisory lock: one process holds it, and loses it with its
    session (a dead process's lock goes with its connection)."""

    def __init__(self, database_url: str, key: int) -> None:
        self._url = database_url
        self._key = key
        self._conn: psycopg.Connection[Any] | None = None

    def try_take(self) -> bool:
        """Takes the lock; held until release() or the connection dies."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True)
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        return bool(row and row[0])

    def connection(self) -> psycopg.Connection[Any]:
        """The session holding the lock, for work only the holder does."""
        if self._conn is None or self._conn.closed:
            raise RuntimeError("the lease is not held")
        return self._conn

    def release(self) -> None:
        if self._conn is not None and not self._conn.closed:
            # Unlocked first: the server frees a closed session's locks only once its
            # backend has noticed, so a successor asking at once could still be refused.
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            self._conn.close()
        self._conn = None


_RELAY_NAME = "events"
_NOT_DATA = {"originator_topic", TRACEPARENT_KEY, TRACESTATE_KEY}

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]


class PositionStore:
    """The relay's last published position, one row per relay, in the event store's schema."""

    def __init__(self, database_url: str, schema: str) -> None:
        self._url = database_url
        self._schema = schema
        self._lease = Lease(database_url, relay_lock_key(schema))

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True)

    def ensure_table(self) -> None:
        with self._connect() as conn:
            create_schema(conn, self._schema)
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{self._schema}".relay_positions '
                "(name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL)"
            )

    def _leader(self) -> psycopg.Connection[Any]:
        # The session holding the advisory lock, reused: only the leader moves the
        # position, and a batch costs no new connection.
        return self._lease.connection()

    def read(self) -> int:
        with self._leader().cursor() as conn:
            row = conn.execute(
                f'SELECT position FROM "{self._schema}".relay_positions WHERE name = %s',
                (_RELAY_NAME,),
            ).fetchone()
        return int(row[0]) if row else 0

    def write(self, position: int) -> None:
        with self._leader().cursor() as conn:
            conn.execute(
                f'INSERT INTO "{self._schema}".relay_positions (name, position, updated_at) '
                "VALUES (%s, %s, now()) ON CONFLICT (name) DO UPDATE "
                "SET position = GREATEST(relay_positions.position, EXCLUDED.position), "
                "updated_at = now()",
                (_RELAY_NAME, position),
            )

    def try_lead(self) -> bool:
        """Takes the session advisory lock; held until release() or the connection dies."""
        return self._lease.try_take()

    def release(self) -> None:
        self._lease.release()


def event_envelope(app: Application[uuid.UUID], notification: Notification) -> tuple[str, Envelope]:
    """The CloudEvent for one stored event, and its Kafka key (the aggregate's id)."""
    domain_event = app.mapper.to_domain_event(notification)
    # The trace context stored with the event goes on as the envelope's extensions (and
    # so as record headers), not as data: it is no field of the event's class.
    traceparent, tracestate = trace_context_of(domain_event)
    attributes = {k: v for k, v in vars(domain_event).items() if k not in _NOT_DATA}
    data = to_jsonable_python(attributes, fallback=str)
    # The key is the aggregate's id so all its events share a partition and keep their order.
    key = str(notification.originator_id)
    subject = _string_id(data, key)
    event_name = notification.topic.rsplit(":", 1)[-1]
    timestamp = getattr(domain_event, "timestamp", None)
    envelope = Envelope(
        id=f"event-{notification.id}",
        type=EVENT_TYPE_PREFIX + event_name,
        time=timestamp if isinstance(timestamp, datetime) else None,
        subject=subject,
        data=data,
        correlationid=data.get("correlation_id") or f"event-{notification.id}",
        causationid=data.get("command_id"),
        actor=data.get("actor"),
        position=notification.id,
        aggregateid=str(notification.originator_id),
        aggregateversion=notification.originator_version,
        **trace_extensions(traceparent, tracestate),
    )
    return key, envelope


def _string_id(data: dict[str, Any], fallback: str) -> str:
    """The user-facing id (program_id, ...) the event names, else the aggregate's UUID."""
    for name in SUBJECT_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return fallback


class OutboxRelay:
    """Polls the notification log after the tracked position and publishes each batch."""

    def __init__(
        self,
        app: Application[uuid.UUID],
        positions: PositionStore,
        topics: Topics,
        publish: Publish,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.05,
    ) -> None:
        self._app = app
        self._positions = positions
        self._topics = topics
        self._publish = publish
        self._batch_size = batch_size
        self._poll = poll_interval_s
        self.position = 0

    async def run(self) -> None:
        """Relays until cancelled (the worker cancels its tasks when it stops).

        A database or broker outage drops the lead and starts over from the stored
        position: at least once, never skipped.
        """
        try:
            while True:
                try:
                    await self._lead_and_relay()
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("outbox relay interrupted, resuming in 1 s: %s", exc)
                    self._positions.release()
                    await asyncio.sleep(1.0)
        finally:
            self._positions.release()

    async def _lead_and_relay(self) -> None:
        await asyncio.to_thread(self._positions.ensure_table)
        await become_leader(self._positions.try_lead)
        self.position = await asyncio.to_thread(self._positions.read)
        while True:
            if not await self.relay_once():
                await asyncio.sleep(self._poll)

    async def relay_once(self) -> int:
        """Publishes the next batch; returns how many events it published."""
        notifications = await asyncio.to_thread(
            self._app.recorder.select_notifications,
            self.position,
            self._batch_size,
            inclusive_of_start=False,
        )
        if not notifications:
            metrics.RELAY_LAG.set(0)  # read to the end of the log
            return 0
        batch = [
            Outgoing(self._topics.events, *event_envelope(self._app, n)) for n in notifications
        ]
        await self._publish(batch)
        last = notifications[-1].id
        await asyncio.to_thread(self._positions.write, last)
        self.position = last
        if len(notifications) < self._batch_size:
            metrics.RELAY_LAG.set(0)  # read to the end of the log
        else:
            head = await asyncio.to_thread(self._app.recorder.max_notification_id)
            metrics.RELAY_LAG.set(max((head or 0) - last, 0))
        return len(batch)
