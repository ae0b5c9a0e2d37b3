"""Live pages: server-sent events carrying table rows as they appear or change.

A live table (a program's executions, the lists of runs) opens an EventSource here; each
event is one row, rendered by the same columns as the page, with the row's id: the page
replaces the row of that id or adds it on top. The stream polls the read tables (they
are the projector's, there is nothing to subscribe to), takes a pooled connection per
poll only, and ends after `MAX_STREAM_S`; the browser reconnects with the last event id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from dspyops.api import views
from dspyops.api.errors import NO_NUL
from dspyops.api.routes.executions import shape as shape_execution
from dspyops.api.routes.programs import ProgramId
from dspyops.api.ui.columns import EXECUTION_COLUMNS, RUN_COLUMNS
from dspyops.api.ui.render import fragment
from dspyops.api.ui.tables import Column, Table
from dspyops.projections.read_schema import EXECUTIONS, RUNS

router = APIRouter(prefix="/ui/live", include_in_schema=False)

POLL_S = 1.0
MAX_STREAM_S = 300.0
BATCH = 50
Row = dict[str, Any]
# (rows changed since the mark, the new mark)
Fetch = Callable[[AsyncConnection, str], Awaitable[tuple[list[Row], str]]]


@router.get("/programs/{program_id}/executions")
async def program_executions(
    request: Request,
    program_id: ProgramId,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """New executions of the program, and the end of those still requested: the ones
    sent, and those already on the page when it loaded (the newest `BATCH` requested up
    to the mark, looked up when the stream starts). A requested row is sent again only
    once it has ended."""
    pending: set[str] = set()
    columns = ", ".join(f'"{c}"' for c in views.EXECUTION_COLUMNS)
    started = False

    async def fetch(conn: AsyncConnection, mark: str) -> tuple[list[Row], str]:
        nonlocal started
        schema = request.app.state.settings.read_model_schema
        table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(EXECUTIONS.name))
        if not started:
            pending.update(await _requested(conn, table, program_id, int(mark)))
            started = True
        query = sql.SQL(
            "SELECT {} FROM {} WHERE program_id = %s AND (position > %s "
            "OR (execution_id = ANY(%s) AND status <> 'requested')) ORDER BY position LIMIT %s"
        ).format(sql.SQL(columns), table)
        rows = await _rows(conn, query, [program_id, int(mark), list(pending), BATCH])
        for row in rows:
            (pending.add if row["status"] == "requested" else pending.discard)(row["execution_id"])
        newest = max([int(mark), *(row["position"] for row in rows)])
        return [shape_execution(row) for row in rows], str(newest)

    start = last_event_id if last_event_id and last_event_id.isdigit() else str(after)
    return _stream(request, fetch, start, EXECUTION_COLUMNS, "execution_id")


Since = Annotated[str | None, Query(max_length=40)]
# Only one program's runs (the list filtered to it); "": every program's.
ProgramFilter = Annotated[str, Query(max_length=200, pattern=NO_NUL)]


@router.get("/optimizations")
async def optimizations(
    request: Request,
    since: Since = None,
    program: ProgramFilter = "",
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    return _runs(request, "optimization", last_event_id or since, program)


@router.get("/evaluations")
async def evaluations(
    request: Request,
    since: Since = None,
    program: ProgramFilter = "",
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    return _runs(request, "evaluation", last_event_id or since, program)


def _runs(request: Request, kind: str, since: str | None, program: str) -> StreamingResponse:
    """Runs of one kind (of one program, when given) changed after `since` (ISO time;
    default now): their progress as it is recorded, new runs among them."""

    async def fetch(conn: AsyncConnection, mark: str) -> tuple[list[Row], str]:
        schema = request.app.state.settings.read_model_schema
        of_program = sql.SQL("AND program_id = %s" if program else "")
        query = sql.SQL(
            "SELECT * FROM {}.{} WHERE kind = %s AND updated_at > %s {} "
            "ORDER BY updated_at LIMIT %s"
        ).format(sql.Identifier(schema), sql.Identifier(RUNS.name), of_program)
        params = [kind, datetime.fromisoformat(mark), *([program] if program else []), BATCH]
        rows = await _rows(conn, query, params)
        newest = rows[-1]["updated_at"].isoformat() if rows else mark
        return rows, newest

    try:
        start = datetime.fromisoformat(since or "").isoformat()
    except ValueError:
        start = datetime.now(UTC).isoformat()
    return _stream(request, fetch, start, RUN_COLUMNS[kind], "run_id")


def _stream(
    request: Request, fetch: Fetch, mark: str, columns: tuple[Column, ...], id_key: str
) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        nonlocal mark
        # How soon the browser comes back after the stream ends.
        yield f"retry: {int(POLL_S * 1000)}\n\n"
        deadline = time.monotonic() + MAX_STREAM_S
        while time.monotonic() < deadline and not await request.is_disconnected():
            async with request.app.state.pool.connection() as conn:
                rows, mark = await fetch(conn, mark)
            for number, row in enumerate(rows, 1):
                table = Table("", columns, [row], row_ids=lambda r: str(r[id_key]))
                html = fragment("row.html", t=table, row=row)
                data = json.dumps({"id": str(row[id_key]), "html": html})
                # The mark goes with the batch's last row: a stream cut before it resumes
                # at the previous mark, and rows sent again replace themselves.
                last = f"id: {mark}\n" if number == len(rows) else ""
                yield f"{last}event: row\ndata: {data}\n\n"
            if not rows:
                # A comment line: keeps proxies from closing an idle stream.
                yield ": idle\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _requested(
    conn: AsyncConnection, table: sql.Composed, program_id: str, mark: int
) -> list[str]:
    """The program's newest executions still requested at or before `mark` (an index
    range on program, status and position)."""
    query = sql.SQL(
        "SELECT execution_id FROM {} WHERE program_id = %s AND status = 'requested' "
        "AND position <= %s ORDER BY position DESC LIMIT %s"
    ).format(table)
    return [row["execution_id"] for row in await _rows(conn, query, [program_id, mark, BATCH])]


async def _rows(conn: AsyncConnection, query: sql.Composed, params: list[Any]) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
