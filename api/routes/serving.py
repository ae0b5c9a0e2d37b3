"""What serves a program: the versions (and their shares of traffic) each alias served at
an instant, and every change of them, with who made it and why.

Both read `serving_changes`, where each change keeps the whole state after it
(`projections/appliers/serving.py`): the state at an instant is one row, never a replay.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES
from dspyops.api.pagination import CursorQuery, LimitQuery, Page
from dspyops.api.routes.programs import ProgramId, load_program
from dspyops.projections.appliers.serving import empty, weights

router = APIRouter(tags=["serving"], responses=COMMON_RESPONSES)

# alias -> {version: percent of the alias's traffic}; JSON keys are text ("3").
Shares = dict[str, dict[str, int]]


class ServingState(BaseModel):
    # alias -> version: `production` (the deployed version) and those SetAlias set.
    aliases: dict[str, int]
    # The traffic splits set on aliases that serve several versions.
    splits: Shares


class ServingChange(BaseModel):
    position: int
    # The event: Deployed, RolledBack, AliasSet, AliasRemoved, Deprecated.
    kind: str
    # The alias it moved (null: several, as a deprecation ends them all), from where to where.
    alias: str | None
    previous_version: int | None
    version: int | None
    # Everything that served after it.
    state: ServingState
    reason: str | None
    actor: str | None
    command_id: str
    correlation_id: str
    occurred_at: datetime


class Serving(ServingState):
    program_id: str
    # The instant answered for (now, when not asked).
    at: datetime
    # Each alias's versions with their percent of its traffic: the split, else 100.
    weights: Shares
    # The last change at or before `at`; null: nothing had served yet.
    change: ServingChange | None


AtQuery = Annotated[
    AwareDatetime | None,
    Query(
        description="An RFC 3339 time with its offset, e.g. 2026-05-01T12:00:00Z. Default: now.",
    ),
]


@router.get(
    "/programs/{program_id}/serving",
    response_model=Serving,
    summary="What served, by alias and with weights, at an instant (default: now)",
)
async def serving_at(
    program_id: ProgramId, db: DbDep, settings: SettingsDep, at: AtQuery = None
) -> dict[str, Any]:
    schema = settings.read_model_schema
    await load_program(db, schema, program_id)
    instant = at or datetime.now(UTC)
    change = await views.serving_at(db, schema, program_id, instant)
    state = empty() if change is None else change["state"]
    return {
        "program_id": program_id,
        "at": instant,
        "aliases": state["aliases"],
        "splits": state["splits"],
        "weights": weights(state),
        "change": change,
    }


@router.get(
    "/programs/{program_id}/serving/history",
    response_model=Page[ServingChange],
    summary="Every change of what serves a program, newest first",
)
async def serving_history(
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    await load_program(db, schema, program_id)
    found = await views.serving_history(db, schema, program_id, limit=limit, cursor=cursor)
    return found.as_page()
