"""Rebuild: project every event into a shadow schema, then swap it in atomically.

Readers see the old tables until the swap commits and the new ones after it; a running
projector waits on the swap's lock and then continues from the shadow's position.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from dspyops.projections import tracking
from dspyops.projections.projector import Projector


def shadow_schema(schema: str) -> str:
    return f"{schema[:54]}_rebuild"


def rebuild(
    database_url: str, *, event_store_schema: str, read_schema: str, batch_size: int = 1000
) -> int:
    """Rebuild `read_schema` from all stored events; return the events read."""
    shadow = shadow_schema(read_schema)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow)))
    projector = Projector(
        database_url,
        event_store_schema=event_store_schema,
        read_schema=shadow,
        batch_size=batch_size,
    )
    try:
        count = projector.catch_up()
    finally:
        projector.close()
    with psycopg.connect(database_url) as conn, conn.transaction():
        tracking.lock(conn, read_schema)
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(read_schema))
        )
        conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(shadow), sql.Identifier(read_schema)
            )
        )
    return count
