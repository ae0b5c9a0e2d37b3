"""How far the read models are behind the event store, read with one query (API side)."""

from __future__ import annotations

from psycopg import AsyncConnection, sql

from projections.schema import TRACKING_TABLE
from projections.tracking import NAME

# eventsourcing names the events table after the application class, lower-cased.
EVENTS_TABLE = "dspyops_events"


def lag_query(event_store_schema: str, read_schema: str) -> sql.Composed:
    return sql.SQL(
        "SELECT coalesce((SELECT position FROM {}.{} WHERE name = {}), 0) AS position, "
        "coalesce((SELECT max(notification_id) FROM {}.{}), 0) AS head"
    ).format(
        sql.Identifier(read_schema),
        sql.Identifier(TRACKING_TABLE),
        sql.Literal(NAME),
        sql.Identifier(event_store_schema),
        sql.Identifier(EVENTS_TABLE),
    )


async def read_lag(conn: AsyncConnection, event_store_schema: str, read_schema: str) -> dict:
    """`{"position", "head", "lag"}`; missing tables count as position/head 0."""
    async with conn.transaction():
        for name in (f"{read_schema}.{TRACKING_TABLE}", f"{event_store_schema}.{EVENTS_TABLE}"):
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            found = await cur.fetchone()
            if not found or not found[0]:
                return {"position": 0, "head": 0, "lag": 0, "missing": name}
        cur = await conn.execute(lag_query(event_store_schema, read_schema))
        row = await cur.fetchone()
    position, head = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"position": position, "head": head, "lag": max(head - position, 0)}
