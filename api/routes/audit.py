"""A program's audit trail: every event of the program and of its runs, with what changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES
from dspyops.api.pagination import CursorQuery, LimitQuery, Page
from dspyops.api.routes.programs import ProgramId, load_program

router = APIRouter(tags=["audit"], responses=COMMON_RESPONSES)


class Change(BaseModel):
    before: Any
    after: Any


class AuditEntry(BaseModel):
    position: int
    occurred_at: datetime
    aggregate_kind: str
    aggregate_id: str
    aggregate_version: int
    event_type: str
    actor: str | None
    command_id: str
    correlation_id: str
    changes: dict[str, Change]


@router.get(
    "/programs/{program_id}/audit",
    response_model=Page[AuditEntry],
    summary="Audit trail of a program, newest first",
)
async def program_audit(
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    await load_program(db, schema, program_id)
    found = await views.audit_trail(db, schema, program_id, limit=limit, cursor=cursor)
    return found.as_page()
