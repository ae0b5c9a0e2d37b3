"""How far the read models are behind the event store, and what the projector skipped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from dspyops.projections.projector import application_name
from dspyops.projections.read_schema import SKIPPED_EVENTS, TRACKING_TABLE
from dspyops.projections.tracking import NAME

# eventsourcing names the events table after the application class, lower-cased.
EVENTS_TABLE = "dspyops_events"


async def read_lag(
    conn: AsyncConnection, event_store_schema: str, read_schema: str
) -> dict[str, Any]:
    """`position` applied, `head` stored, `lag` between them, whether the read models
    exist (`built`), and the events the projector skipped (`skipped`, the `last_skipped`
    one); a missing table counts as position or head 0."""
    position = head = 0
    built = await _exists(conn, read_schema, TRACKING_TABLE)
    if built:
        position = await _scalar(
            conn,
            sql.SQL("SELECT position FROM {}.{} WHERE name = {}").format(
                sql.Identifier(read_schema), sql.Identifier(TRACKING_TABLE), sql.Literal(NAME)
            ),
        )
    if await _exists(conn, event_store_schema, EVENTS_TABLE):
        head = await _scalar(
            conn,
            sql.SQL("SELECT max(notification_id) FROM {}.{}").format(
                sql.Identifier(event_store_schema), sql.Identifier(EVENTS_TABLE)
            ),
        )
    skipped, last_skipped = 0, None
    if await _exists(conn, read_schema, SKIPPED_EVENTS.name):
        cur = await conn.execute(
            sql.SQL(
                "SELECT count(*) OVER (), position, event_type, error_type "
                "FROM {}.{} ORDER BY position DESC LIMIT 1"
            ).format(sql.Identifier(read_schema), sql.Identifier(SKIPPED_EVENTS.name))
        )
        row = await cur.fetchone()
        if row is not None:
            skipped = int(row[0])
            # Not the message: /health answers without a token (projection_errors has it).
            keys = ("position", "event_type", "error_type")
            last_skipped = dict(zip(keys, row[1:], strict=True))
    return {
        "position": position,
        "head": head,
        "lag": max(head - position, 0),
        "built": built,
        "skipped": skipped,
        "last_skipped": last_skipped,
    }


# A projector that has events to apply and applied none for this long is behind, not
# busy: it applies a batch (up to 1,000 events) in well under a second here.
BEHIND_AFTER = timedelta(seconds=10)


@dataclass(frozen=True)
class ProjectorStatus:
    # running, behind or stopped (the rule: `projector_status`).
    status: str
    # Projector sessions connected for this read schema (pg_stat_activity).
    connected: int
    # When the read side last applied a batch (its tracking row), None if never.
    applied_at: datetime | None


async def projector_status(
    conn: AsyncConnection, read_schema: str, lag: dict[str, Any]
) -> ProjectorStatus:
    """Is a projector running for `read_schema`, and is it keeping up with `lag` (read_lag)?

    - stopped: no session named for this read schema (projections/projector.py names its
      connection `dspyops-projector:<schema>`) is connected to the database;
    - behind: one is, events wait (lag > 0) and it applied none for `BEHIND_AFTER`;
    - running: one is, and it is caught up or applied a batch within `BEHIND_AFTER`.
    """
    cur = await conn.execute(
        "SELECT count(*), now() FROM pg_stat_activity WHERE application_name = %s",
        [application_name(read_schema)],
    )
    row = await cur.fetchone()
    assert row is not None
    connected, now = int(row[0]), row[1]
    applied_at = None
    if lag["built"]:
        cur = await conn.execute(
            sql.SQL("SELECT updated_at FROM {}.{} WHERE name = %s").format(
                sql.Identifier(read_schema), sql.Identifier(TRACKING_TABLE)
            ),
            [NAME],
        )
        tracked = await cur.fetchone()
        applied_at = tracked[0] if tracked else None
    if not connected:
        status = "stopped"
    elif lag["lag"] and (applied_at is None or now - applied_at > BEHIND_AFTER):
        status = "behind"
    else:
        status = "running"
    return ProjectorStatus(status, connected, applied_at)


async def _exists(conn: AsyncConnection, schema: str, name: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s", [schema, name]
    )
    return await cur.fetchone() is not None


async def _scalar(conn: AsyncConnection, query: sql.Composed) -> int:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0
