"""Creating the read tables in a read schema, from their declarations in `read_schema`,
and bringing tables an earlier layout made up to them (`projections/upgrade.py`)."""

from __future__ import annotations

from psycopg import Connection, sql

from dspyops.bootstrap import create_schema
from dspyops.projections.read_schema import (
    INDEXES,
    READ_MODELS,
    SKIPPED_EVENTS,
    TRACKING,
    Table,
)
from dspyops.projections.upgrade import check_new_tables, upgrade


def create_tables(conn: Connection, schema: str) -> list[str]:
    """Create the read schema, its tables and the tracking table if they are missing, and
    add the columns an earlier layout's tables lack; return a line per upgrade applied.

    Raises `upgrade.OutdatedReadSchema` when a missing column or table needs a rebuild."""
    ident = sql.Identifier(schema)
    create_schema(conn, schema)
    check_new_tables(conn, schema)
    for table in READ_MODELS:
        conn.execute(table_ddl(schema, table))
    for number, (table, columns) in enumerate(INDEXES):
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} ({})").format(
                sql.Identifier(f"{table.name}_idx{number}"),
                ident,
                sql.Identifier(table.name),
                sql.SQL(columns),
            )
        )
    conn.execute(table_ddl(schema, TRACKING))
    conn.execute(table_ddl(schema, SKIPPED_EVENTS))
    return upgrade(conn, schema)


def table_ddl(schema: str, table: Table) -> sql.Composed:
    definitions: list[sql.Composable] = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type))
        for name, sql_type in table.columns
    ]
    definitions.append(
        sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.key)))
    )
    definitions += [sql.SQL(constraint) for constraint in table.constraints]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
        sql.Identifier(schema), sql.Identifier(table.name), sql.SQL(", ").join(definitions)
    )
