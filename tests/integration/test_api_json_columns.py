"""The API's pooled connections read json/jsonb with orjson (api/json_columns.py) and
still give exactly what psycopg's default, json.loads, gives: integers past 64 bits stay
integers, and float-looking numbers stay floats."""

from __future__ import annotations

import psycopg
import pytest

from dspyops.api import json_columns

DOCUMENTS = [
    '{"big": 123456789012345678901234567890, "neg": -99999999999999999999}',
    '{"question": "q\\u00e9", "confidence": 0.5, "n": [1, 2.25, -3e-7, null, true]}',
    "[1e20, 12345678901234567890.5]",
]


@pytest.mark.parametrize("kind", ["jsonb", "json"])
@pytest.mark.parametrize("document", DOCUMENTS)
async def test_columns_read_as_json_loads_reads_them(
    database_url: str, kind: str, document: str
) -> None:
    query = f"SELECT %s::{kind}"
    async with await psycopg.AsyncConnection.connect(database_url) as plain:
        expected = (await (await plain.execute(query, [document])).fetchone() or [None])[0]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await json_columns.configure(conn)
        oid = conn.adapters.types[kind].oid
        for fmt in (psycopg.pq.Format.TEXT, psycopg.pq.Format.BINARY):
            loader = conn.adapters.get_loader(oid, fmt)
            assert loader is not None
            assert loader._loads is json_columns.loads  # type: ignore[attr-defined]
        got = (await (await conn.execute(query, [document])).fetchone() or [None])[0]
    assert repr(got) == repr(expected)
