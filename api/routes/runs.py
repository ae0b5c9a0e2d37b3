"""Optimizations and evaluations: the two kinds of run, each with a list and a detail route."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from psycopg import AsyncConnection
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES, NO_NUL, not_found
from dspyops.api.pagination import CursorQuery, LimitQuery, Page
from dspyops.events.results import Provenance

router = APIRouter(tags=["runs"], responses=COMMON_RESPONSES)

RunStatus = Literal["requested", "running", "completed", "failed", "cancelled"]
RunId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
ProgramFilter = Annotated[
    str | None, Query(max_length=200, pattern=NO_NUL, description="Only this program.")
]
StatusFilter = Annotated[RunStatus | None, Query(description="Only this status.")]


class RunError(BaseModel):
    code: str
    message: str | None


class Run(BaseModel):
    program_id: str
    dataset_id: str
    status: RunStatus
    metric: str
    step: int
    total: int
    best_score: float | None
    error: RunError | None
    cancel_reason: str | None
    command_id: str
    correlation_id: str
    actor: str | None
    requested_at: datetime
    updated_at: datetime
    # The dataset version the run took its examples from (a resumed run takes the same);
    # null for runs requested before dspyops recorded it.
    dataset_version: int | None
    # What the run ran with, once completed: dspy and dspyops versions, the optimizer
    # config as used and its seed, each LM profile with the models that answered; null
    # until it completes, and for runs completed before dspyops recorded it.
    provenance: Provenance | None


class Optimization(Run):
    optimization_id: str
    optimizer: str
    config: dict[str, Any]
    base_version: int
    version_created: int | None
    baseline_score: float | None
    optimized_score: float | None
    # A run stopped over its budget (error `budget_exceeded`) that kept its best
    # candidate: that version; null otherwise.
    kept_version: int | None


class Evaluation(Run):
    evaluation_id: str
    version: int
    score: float | None
    # Examples whose LM call failed (each marked with its `error` code in per_example);
    # null for evaluations recorded before dspyops counted them.
    errored: int | None
    per_example: list[dict[str, Any]] | None


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    error = None
    if row["error_code"] is not None:
        error = {"code": row["error_code"], "message": row["error_message"]}
    return {**row, f"{row['kind']}_id": row["run_id"], "error": error}


async def _list(
    conn: AsyncConnection,
    schema: str,
    kind: str,
    program_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    found = await views.runs(
        conn, schema, kind, program_id=program_id, status=status, limit=limit, cursor=cursor
    )
    return found.as_page(_shape)


async def _one(conn: AsyncConnection, schema: str, kind: str, run_id: str) -> dict[str, Any]:
    row = await views.run(conn, schema, kind, run_id)
    if row is None:
        raise not_found(kind, run_id)
    return _shape(row)


@router.get("/optimizations", response_model=Page[Optimization], summary="List optimizations")
async def list_optimizations(
    db: DbDep,
    settings: SettingsDep,
    program_id: ProgramFilter = None,
    status: StatusFilter = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    return await _list(
        db, settings.read_model_schema, "optimization", program_id, status, limit, cursor
    )


@router.get("/optimizations/{optimization_id}", response_model=Optimization)
async def get_optimization(optimization_id: RunId, db: DbDep, settings: SettingsDep) -> Any:
    return await _one(db, settings.read_model_schema, "optimization", optimization_id)


@router.get("/evaluations", response_model=Page[Evaluation], summary="List evaluations")
async def list_evaluations(
    db: DbDep,
    settings: SettingsDep,
    program_id: ProgramFilter = None,
    status: StatusFilter = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    return await _list(
        db, settings.read_model_schema, "evaluation", program_id, status, limit, cursor
    )


@router.get("/evaluations/{evaluation_id}", response_model=Evaluation)
async def get_evaluation(evaluation_id: RunId, db: DbDep, settings: SettingsDep) -> Any:
    return await _one(db, settings.read_model_schema, "evaluation", evaluation_id)
