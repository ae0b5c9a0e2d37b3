"""The read side's position in the event store, written in the same transaction as the rows.

Only one writer may apply a batch to a read schema at a time: a transaction-scoped
advisory lock serializes projectors (and a rebuild's swap), so two processes never apply
the same event twice.
"""

from __future__ import annotations

from psycopg import Connection, sql

from dspyops.projections.read_schema import TRACKING_TABLE

NAME = "dspyops"


def lock(conn: Connection, schema: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"dspyops.projection:{schema}"])


def read_position(conn: Connection, schema: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT position FROM {}.{} WHERE name = %s").format(
            sql.Identifier(schema), sql.Identifier(TRACKING_TABLE)
        ),
        [NAME],
    ).fetchone()
    return int(row[0]) if row else 0


def write_position(conn: Connection, schema: str, position: int) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.{} (name, position, updated_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()"
        ).format(sql.Identifier(schema), sql.Identifier(TRACKING_TABLE)),
        [NAME, position],
    )
