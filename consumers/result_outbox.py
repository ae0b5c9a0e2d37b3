"""The results outbox: with exactly-once results on, the worker writes each message a
command causes (results, progress, dead letters) to PostgreSQL instead of Kafka, and
`result_relay` publishes them in Kafka transactions.

Why a table between the two: Kafka's transactions make "publish these and commit that
position" atomic, but only for positions Kafka keeps. A record's results are decided
before its offset can be committed (many records are in flight per partition), so the
worker cannot put them in a transaction with the record's own offset without waiting for
every record before it. Instead:

- A message is stored once: the row's key is the envelope id, which is derived from the
  command id (`events.envelope.result_id`), so a redelivered command's results, answered
  from the event store, are the same ids and are not stored again (`ON CONFLICT DO
  NOTHING`). Only after they are stored does the worker let faust commit the offset.
- Rows are numbered in commit order: writers take a transaction-scoped advisory lock, as
  eventsourcing's recorder takes a table lock for its notification ids, so the relay,
  which reads "after position N", never passes a row that commits later with a smaller
  number.
- Rows stay for `retention` after they are published: a command redelivered within it
  finds its ids taken. Kafka commits a worker's offsets within seconds; the default is a
  day.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from dspyops.bootstrap import create_schema
from dspyops.consumers.batcher import Batcher
from dspyops.consumers.records import Outgoing
from dspyops.events.codec import encode
from dspyops.events.envelope import TRACEPARENT, TRACESTATE

TABLE = "result_outbox"


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"dspyops:result_outbox:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class StoredMessage:
    """One row of the outbox, ready to send."""

    position: int
    id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class ResultOutbox:
    """The outbox table in the event store's schema, written by workers, read by the relay."""

    def __init__(self, pool: ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._table = sql.Identifier(schema, TABLE)
        self._lock = _lock_key(schema)

    @classmethod
    def connect(cls, database_url: str, schema: str, *, max_size: int) -> ResultOutbox:
        pool: ConnectionPool[Any] = ConnectionPool(
            database_url, min_size=1, max_size=max_size, open=True, name="result-outbox"
        )
        return cls(pool, schema)

    def close(self) -> None:
        self._pool.close()

    def ensure_table(self) -> None:
        """Creates the table if missing. Worker processes start together: under the
        writers' lock, so two never race to create it (PostgreSQL's IF NOT EXISTS is not
        safe against that)."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
            create_schema(conn, self._schema)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (position bigserial PRIMARY KEY, "
                    "id text NOT NULL UNIQUE, topic text NOT NULL, key bytea, "
                    "value bytea NOT NULL, headers jsonb NOT NULL DEFAULT '{{}}', "
                    "stored_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._table)
            )

    def put(self, messages: Sequence[Outgoing]) -> int:
        """Stores the messages not stored before (by envelope id); returns how many were new."""
        if not messages:
            return 0
        rows = [_row(message) for message in messages]
        with self._pool.connection() as conn, conn.transaction():
            # Positions are taken under the lock, so they become visible in their order.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
            with conn.cursor() as cursor:
                cursor.executemany(
                    sql.SQL(
                        "INSERT INTO {} (id, topic, key, value, headers) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
                    ).format(self._table),
                    rows,
                )
                return max(cursor.rowcount, 0)

    def after(self, position: int, limit: int) -> list[StoredMessage]:
        """The rows after `position`, in order, at most `limit`."""
        with self._pool.connection() as conn:
            found = conn.execute(
                sql.SQL(
                    "SELECT position, id, topic, key, value, headers FROM {} "
                    "WHERE position > %s ORDER BY position LIMIT %s"
                ).format(self._table),
                (position, limit),
            ).fetchall()
        return [
            StoredMessage(
                position=row[0],
                id=row[1],
                topic=row[2],
                key=bytes(row[3]) if row[3] is not None else None,
                value=bytes(row[4]),
                headers=[(name, value.encode()) for name, value in (row[5] or {}).items()],
            )
            for row in found
        ]

    def prune(self, published_through: int, retention: timedelta) -> int:
        """Deletes published rows older than `retention`; returns how many."""
        with self._pool.connection() as conn:
            cursor = conn.execute(
                sql.SQL("DELETE FROM {} WHERE position <= %s AND stored_at < now() - %s").format(
                    self._table
                ),
                (published_through, retention),
            )
            return max(cursor.rowcount, 0)


def outbox_exists(database_url: str, schema: str) -> bool:
    """Whether the outbox table was ever made in `schema` (exactly-once results were on)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (sql.Identifier(schema, TABLE).as_string(conn),),
        ).fetchone()
    return bool(row and row[0])


def _row(message: Outgoing) -> tuple[Any, ...]:
    extensions = message.envelope.model_extra or {}
    headers = {
        name: value
        for name in (TRACEPARENT, TRACESTATE)
        if isinstance(value := extensions.get(name), str)
    }
    return (
        message.envelope.id,
        message.topic,
        message.key.encode() if message.key is not None else None,
        encode(message.envelope),
        json.dumps(headers),
    )


class OutboxDelivery:
    """The worker's way to publish with exactly-once results: store in the outbox (in the
    store's threads) and wake the relay. Returns once the rows are committed, which is
    when faust may commit the command's offset.

    Writers of the outbox are serialised (the lock that orders positions), so the records
    finishing while a write is in flight are written together by the next one: one
    commit, not one per record.
    """

    def __init__(self, outbox: ResultOutbox, executor: Executor | None, wake: Callable[[], None]):
        self._outbox = outbox
        self._executor = executor
        self._wake = wake
        self._writes: Batcher[Sequence[Outgoing], None] = Batcher(self._put_many)

    async def __call__(self, messages: Sequence[Outgoing]) -> None:
        if messages:
            await self._writes.submit(messages)

    async def _put_many(self, batches: Sequence[Sequence[Outgoing]]) -> list[Exception | None]:
        messages = [message for batch in batches for message in batch]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._outbox.put, messages)
        self._wake()
        return [None] * len(batches)
