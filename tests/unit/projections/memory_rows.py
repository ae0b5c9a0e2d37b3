"""The appliers' row interface over dicts, for unit tests of appliers (no database)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from dspyops.projections.appliers.rows import Row
from dspyops.projections.read_schema import Table


class MemoryRows:
    """The appliers' row interface over dicts: enough to run handlers without a database."""

    def __init__(self) -> None:
        self.tables: dict[str, list[Row]] = defaultdict(list)

    def insert(self, table: Table, row: Mapping[str, Any]) -> None:
        assert set(row) <= set(table.names), set(row) - set(table.names)
        self.tables[table.name].append({c: _stored(table, c, v) for c, v in row.items()})

    def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.insert(table, row)

    def update(self, table: Table, key: Row, values: Row) -> None:
        self._row(table, key).update({c: _stored(table, c, v) for c, v in values.items()})

    def select(self, table: Table, key: Row) -> Row:
        # A copy, as a query returns: the applier compares it with the row after the update.
        return dict(self._row(table, key))

    def last(self, table: Table, key: Row) -> Row | None:
        found = [r for r in self.tables[table.name] if all(r[k] == v for k, v in key.items())]
        return dict(max(found, key=lambda r: r["position"])) if found else None

    def _row(self, table: Table, key: Row) -> Row:
        (row,) = [r for r in self.tables[table.name] if all(r[k] == v for k, v in key.items())]
        return row


def _stored(table: Table, column: str, value: Any) -> Any:
    """The value as a query reads it back: JSON columns come back decoded afresh, with
    text keys (a dict keyed by numbers is not)."""
    if value is not None and table.sql_type(column) in ("json", "jsonb"):
        return json.loads(json.dumps(value))
    return value
