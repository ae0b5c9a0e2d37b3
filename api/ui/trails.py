"""A program's serving history and audit trail, newest first: the latest on its page, the
rest paged on their own pages (`/ui/programs/{id}/serving`, `/ui/programs/{id}/audit`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.pagination import CursorQuery
from dspyops.api.routes.programs import ProgramId, load_program
from dspyops.api.ui.columns import AUDIT_COLUMNS, SERVING_COLUMNS
from dspyops.api.ui.render import page
from dspyops.api.ui.tables import Table, path, with_query

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE = 50
# name: (caption, columns, the query; both page newest first by position)
TRAILS = {
    "serving": ("Serving history", SERVING_COLUMNS, views.serving_history),
    "audit": ("Audit trail", AUDIT_COLUMNS, views.audit_trail),
}


async def trail(
    db: Any, schema: str, program_id: str, name: str, limit: int, cursor: str | None = None
) -> Table:
    caption, columns, read = TRAILS[name]
    found = await read(db, schema, program_id, limit=limit, cursor=cursor)
    more = with_query(path("programs", program_id, name), cursor=found.next_cursor)
    return Table(
        f"{caption}, newest first", columns, found.items, more if found.next_cursor else None
    )


@router.get("/programs/{program_id}/serving", response_class=HTMLResponse)
async def serving_page(
    request: Request,
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    cursor: CursorQuery = None,
) -> HTMLResponse:
    return await _page(request, db, settings.read_model_schema, program_id, "serving", cursor)


@router.get("/programs/{program_id}/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    cursor: CursorQuery = None,
) -> HTMLResponse:
    return await _page(request, db, settings.read_model_schema, program_id, "audit", cursor)


async def _page(
    request: Request, db: Any, schema: str, program_id: str, name: str, cursor: str | None
) -> HTMLResponse:
    program = await load_program(db, schema, program_id)
    return page(
        request,
        "trail.html",
        title=f"{program['name']}: {TRAILS[name][0].lower()}",
        back=path("programs", program_id),
        program=program,
        listing=await trail(db, schema, program_id, name, PAGE, cursor),
    )
