"""Reading json/jsonb columns on the API's connections with `projections.json_codec.loads`
(orjson, to the values `json.loads` gives): psycopg's default, `json.loads`, was a third of
the CPU of a page of executions (inputs, outputs, route and error details per row)."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.types.json import set_json_loads

from dspyops.projections.json_codec import loads

__all__ = ["configure", "loads"]


async def configure(conn: AsyncConnection) -> None:
    """The pool's `configure`: json and jsonb columns read with `loads`."""
    set_json_loads(loads, conn)
