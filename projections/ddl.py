"""Creating the read tables in a read schema, from their declarations in `read_schema`."""

from __future__ import annotations

from psycopg import Connection, sql

from dspyops.projections.read_schema import INDEXES, READ_MODELS, TRACKING, Table


def create_tables(conn: Connection, schema: str) -> None:
    """Create the read schema, its tables and the tracking table if they are missing."""
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
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
