"""Executions: a program's executions (filtered, paged) and one execution."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES, NO_NUL, not_found
from dspyops.api.pagination import CursorQuery, LimitQuery, Page
from dspyops.api.routes.programs import ProgramId, load_program

router = APIRouter(tags=["executions"], responses=COMMON_RESPONSES)

ExecutionStatus = Literal["requested", "succeeded", "failed"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Route(BaseModel):
    alias: str | None
    arm: int | None
    bucket: int | None
    reason: str


class ExecutionError(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]]


class Execution(BaseModel):
    execution_id: str
    program_id: str
    version: int
    status: ExecutionStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    latency_ms: float | None
    usage: Usage | None
    # True when the output came from the `offline` LM profile (tests, demo), not a real LM.
    offline: bool
    error: ExecutionError | None
    command_id: str
    correlation_id: str
    actor: str | None
    requested_at: datetime
    completed_at: datetime | None
    # For a failure: the step (or predictor) that raised, when the program got that far.
    failed_step: str | None
    # US dollars; null when the model's price is unknown (or recorded before costs were).
    cost_usd: float | None
    # How its version was chosen: the alias addressed, the split arm and routing-key
    # bucket when a traffic split chose, and why; null when recorded before routes were.
    route: Route | None = None


class Feedback(BaseModel):
    # Its place among the execution's feedback: 1, 2, ...
    number: int
    score: float | None
    label: str | None
    comment: str | None
    corrected_outputs: dict[str, Any] | None
    actor: str | None
    command_id: str
    correlation_id: str
    recorded_at: datetime


class ExecutionDetail(Execution):
    # Every step, predictor, LM call (model, tokens), tool call and retrieval, nested,
    # with timings (docs/programs.md, "Traces"); null for executions recorded before.
    trace: dict[str, Any] | None
    # What people (and judges) said of it (RecordFeedback), oldest first.
    feedback: list[Feedback]


def shape(row: dict[str, Any]) -> dict[str, Any]:
    usage = None
    if row["total_tokens"] is not None:
        usage = {k: row[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    error = None
    if row["error_code"] is not None:
        error = {
            "code": row["error_code"],
            "message": row["error_message"],
            "details": row["error_details"] or [],
        }
    return {**row, "usage": usage, "error": error}


@router.get(
    "/programs/{program_id}/executions",
    response_model=Page[Execution],
    summary="A program's executions, newest first",
)
async def list_executions(
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    status: Annotated[ExecutionStatus | None, Query(description="Only this status.")] = None,
    version: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    since: Annotated[datetime | None, Query(description="Requested at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Requested before.")] = None,
    min_score: Annotated[
        float | None,
        Query(description="Latest scored feedback at least this (unscored: left out)."),
    ] = None,
    max_score: Annotated[
        float | None,
        Query(description="Latest scored feedback at most this (unscored: left out)."),
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    await load_program(db, schema, program_id)
    found = await views.executions(
        db,
        schema,
        program_id,
        status=status,
        version=version,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
        min_score=min_score,
        max_score=max_score,
    )
    return found.as_page(shape)


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionDetail,
    summary="One execution, with its trace and feedback",
)
async def get_execution(
    execution_id: Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)],
    db: DbDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    row = await views.execution(db, schema, execution_id)
    if row is None:
        raise not_found("execution", execution_id)
    return {**shape(row), "feedback": await views.feedback(db, schema, execution_id)}
