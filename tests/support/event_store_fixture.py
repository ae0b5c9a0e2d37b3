"""The event store written by an earlier layout, loaded into a fresh PostgreSQL schema.

`tests/fixtures/event_store_v1.json` holds every row of an event store made with the
layout before the move to one package (topics `aggregates.program:Program.Registered`,
...): every stored event class of that layout at least once, and a Program snapshot.
`read_models_v1.json` holds what that layout's projector made of it. How both were made
is in tests/fixtures/README.md.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVENT_STORE_V1 = FIXTURES / "event_store_v1.json"
READ_MODELS_V1 = FIXTURES / "read_models_v1.json"


def _value(cell: Any) -> Any:
    if isinstance(cell, dict) and "utf8" in cell:
        return cell["utf8"].encode()
    if isinstance(cell, dict) and "base64" in cell:
        return base64.b64decode(cell["base64"])
    return cell


def load_event_store_v1(database_url: str, schema: str) -> int:
    """Copy the fixture's rows into `schema`, whose tables the application created."""
    tables = json.loads(EVENT_STORE_V1.read_text())["tables"]
    rows_loaded = 0
    with psycopg.connect(database_url) as conn, conn.transaction():
        for name, table in tables.items():
            columns = table["columns"]
            query = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                sql.Identifier(schema),
                sql.Identifier(name),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            )
            with conn.cursor() as cur:
                cur.executemany(query, [[_value(c) for c in row] for row in table["rows"]])
            rows_loaded += len(table["rows"])
        # New events must be numbered after the loaded ones.
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({}, 'notification_id'), "
                "(SELECT max(notification_id) FROM {}.{}))"
            ).format(
                sql.Literal(f'"{schema}".dspyops_events'),
                sql.Identifier(schema),
                sql.Identifier("dspyops_events"),
            )
        )
    return rows_loaded


def plain(value: Any) -> Any:
    """A read-model cell as the fixture stores it (JSON-able)."""
    if isinstance(value, bytes | memoryview):
        return {"utf8": bytes(value).decode()}
    if isinstance(value, datetime.datetime | uuid.UUID):
        return str(value)
    return value


def read_models_v1() -> dict[str, Any]:
    tables: dict[str, Any] = json.loads(READ_MODELS_V1.read_text())["tables"]
    return tables


def dump_table(database_url: str, schema: str, table: str, columns: list[str]) -> list[list[Any]]:
    """Rows of `table` restricted to `columns`, ordered as the fixture is (by the first two)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {}.{} ORDER BY 1, 2").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.Identifier(schema),
                sql.Identifier(table),
            )
        ).fetchall()
    return [[plain(v) for v in row] for row in rows]
