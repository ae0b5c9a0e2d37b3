"""Row writes and reads on one connection, for the appliers, inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

from dspyops.projections.json_codec import dumps_jsonb
from dspyops.projections.read_schema import Table

Row = dict[str, Any]


class Rows:
    def __init__(self, conn: Connection, schema: str) -> None:
        self.conn = conn
        self.schema = sql.Identifier(schema)

    def insert(self, table: Table, row: Mapping[str, Any]) -> None:
        columns = list(row)
        self.conn.execute(
            self._insert_sql(table, columns), [_param(table, c, row[c]) for c in columns]
        )

    def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert full rows (every column of `table`) with one COPY, in the caller's
        transaction: constraints are checked as for INSERT, and a row the server refuses
        fails the COPY (the batch is then applied event by event, `skipped.py`). An
        executemany sent a statement per row; the projector's profile had it at half of
        catch-up (bench/bench_read_side.py)."""
        if not rows:
            return
        columns = table.names
        values_of = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
        # JSON columns take their documents' text: the text format's str, escaped by COPY.
        documents = [
            (index, _TEXT[kind])
            for index, column in enumerate(columns)
            if (kind := table.sql_type(column)) in _TEXT
        ]
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._table(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                values = list(values_of(row))
                for index, text in documents:
                    value = values[index]
                    if value is not None:
                        values[index] = text(value)
                copy.write_row(values)

    def update(self, table: Table, key: Row, values: Row) -> None:
        self.conn.execute(
            sql.SQL("UPDATE {} SET {} WHERE {}").format(
                self._table(table), _assignments(values, ", "), _assignments(key, " AND ")
            ),
            [_param(table, c, v) for c, v in values.items()] + list(key.values()),
        )

    def select(self, table: Table, key: Row) -> Row:
        """The one row with this key; a missing row means events arrived out of order."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL("SELECT * FROM {} WHERE {}").format(
                    self._table(table), _assignments(key, " AND ")
                ),
                list(key.values()),
            )
            row = cur.fetchone()
        if row is None:
            raise LookupError(f"read model {table.name} has no row {key}: events out of order?")
        return row

    def last(self, table: Table, key: Row) -> Row | None:
        """Of the rows with this key, the one the latest event made; None if there is none."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL("SELECT * FROM {} WHERE {} ORDER BY position DESC LIMIT 1").format(
                    self._table(table), _assignments(key, " AND ")
                ),
                list(key.values()),
            )
            return cur.fetchone()

    def _table(self, table: Table) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.schema, sql.Identifier(table.name))

    def _insert_sql(self, table: Table, columns: Sequence[str]) -> sql.Composed:
        return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self._table(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )


def _assignments(values: Row, separator: str) -> sql.Composed:
    return sql.SQL(separator).join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
    )


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps_jsonb)


# json keeps the document's text as written (key order included), by json.dumps; jsonb
# normalizes it, so orjson may write it (faster; the projector's profile had json.dumps
# at a fifth of writing execution rows).
_TEXT: dict[str, Callable[[Any], str]] = {"jsonb": dumps_jsonb, "json": json.dumps}


def _param(table: Table, column: str, value: Any) -> Any:
    if value is None:
        return None
    sql_type = table.sql_type(column)
    if sql_type == "jsonb":
        return _jsonb(value)
    # json keeps the document's text as written (key order included); jsonb normalizes it.
    if sql_type == "json":
        return Json(value)
    return value
