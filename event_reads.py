"""Reading the stored events of many aggregates in one PostgreSQL round trip.

A worker plans the executions that arrived together in one store call; each looks up its
command's stored outcome and its execution (mostly absent). One query for all of them
instead of two per execution (`DspyOps.reading_ahead`).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg import sql

from dspyops.aggregates.app.application import select_one_by_one


def select_many(recorder: AggregateRecorder, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
    """Each aggregate's stored events in version order (absent ones: none), one query on
    PostgreSQL; any other recorder reads them one by one."""
    if not isinstance(recorder, PostgresAggregateRecorder):
        return select_one_by_one(recorder, ids)
    datastore = recorder.datastore
    statement = sql.SQL(
        "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
        " WHERE originator_id = ANY(%s::{id_type}[])"
        " ORDER BY originator_id, originator_version"
    ).format(
        schema=sql.Identifier(datastore.schema),
        table=sql.Identifier(recorder.events_table_name),
        id_type=sql.SQL(datastore.originator_id_type),
    )
    found: dict[UUID, list[StoredEvent]] = {aggregate_id: [] for aggregate_id in ids}
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, [list(ids)], prepare=True)
        for row in curs.fetchall():
            originator_id = row["originator_id"]
            key = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
            found.setdefault(key, []).append(
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
    return found
