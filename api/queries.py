"""Plain SQL over the read tables: the table names of the read schema and row fetching."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row


def columns(names: Iterable[str]) -> sql.Composed:
    """A select list of these columns (named in `projections.read_schema`)."""
    return sql.SQL(", ").join(map(sql.Identifier, names))


def table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


async def fetch_all(
    conn: AsyncConnection, query: sql.Composed | sql.SQL, params: list[Any] | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params or [])
        return await cur.fetchall()


async def fetch_one(
    conn: AsyncConnection, query: sql.Composed | sql.SQL, params: list[Any] | None = None
) -> dict[str, Any] | None:
    rows = await fetch_all(conn, query, params)
    return rows[0] if rows else None
