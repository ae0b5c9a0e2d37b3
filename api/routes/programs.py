"""Programs, their versions and the JSON Schema of their inputs and outputs."""

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

router = APIRouter(prefix="/programs", tags=["programs"], responses=COMMON_RESPONSES)

ProgramStatus = Literal["draft", "training", "optimized", "deployed", "deprecated"]
ProgramId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647)]


class Budget(BaseModel):
    """US dollars per UTC day and executions per minute; a null limit does not limit."""

    usd_per_day: float | None
    executions_per_minute: int | None


class SplitArm(BaseModel):
    version: int
    percent: int


class SplitGuard(BaseModel):
    max_error_rate: float
    window: int


class TrafficSplit(BaseModel):
    """Executions addressed to the alias go to `arms` by weight (SetTrafficSplit)."""

    arms: list[SplitArm]
    guard: SplitGuard | None = None


class FeedbackScale(BaseModel):
    min: float
    max: float


class OnlineEvaluation(BaseModel):
    """A sample of its executions is scored by a judge program (SetOnlineEvaluation)."""

    # The judge program's id, and the alias it runs at (null: its deployed, else latest,
    # version).
    judge: str
    alias: str | None
    sample_percent: float


class Program(BaseModel):
    program_id: str
    name: str
    signature: str
    module: str
    instructions: str | None
    description: str | None
    field_descriptions: dict[str, str]
    status: ProgramStatus
    latest_version: int
    deployed_version: int | None
    # What its executions may spend (SetBudget); null: no budget.
    budget: Budget | None = None
    # Named versions: {alias: version}, `production` (the deployed version) among them.
    aliases: dict[str, int] = {}
    # Traffic splits by alias: {alias: {arms, guard}}; an alias without one serves its
    # version alone.
    splits: dict[str, TrafficSplit] = {}
    # The range of feedback scores on its executions; null: the default, 0..1.
    feedback_scale: FeedbackScale | None = None
    # The judge scoring a sample of its executions online; null: none.
    online_evaluation: OnlineEvaluation | None = None
    created_at: datetime
    updated_at: datetime


class Version(BaseModel):
    program_id: str
    number: int
    source: Literal["registered", "updated", "optimized"]
    instructions: str | None
    based_on: int | None
    optimization_id: str | None
    optimizer: str | None
    metric: str | None
    config: dict[str, Any] | None
    dataset_id: str | None
    # The dataset version its optimization took its examples from; null for versions not
    # made by an optimization, and those made before dspyops recorded it.
    dataset_version: int | None
    baseline_score: float | None
    optimized_score: float | None
    created_at: datetime
    deployed: bool


class CompiledVersion(Version):
    # DSPy's saved module state (demos); None for a version never optimized.
    state: dict[str, Any] | None


class ProgramSchema(BaseModel):
    program_id: str
    version: int
    signature: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


async def load_program(conn: AsyncConnection, schema: str, program_id: str) -> dict[str, Any]:
    """The program's row, or a 404 for an unknown id."""
    row = await views.program(conn, schema, program_id)
    if row is None:
        raise not_found("program", program_id)
    return row


@router.get("", response_model=Page[Program], summary="List programs, newest first")
async def list_programs(
    db: DbDep,
    settings: SettingsDep,
    status: Annotated[ProgramStatus | None, Query(description="Only this status.")] = None,
    name: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Name contains this, any case."),
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    found = await views.programs(
        db, settings.read_model_schema, status=status, name=name, limit=limit, cursor=cursor
    )
    return found.as_page()


@router.get("/{program_id}", response_model=Program, summary="One program")
async def get_program(program_id: ProgramId, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    return await load_program(db, settings.read_model_schema, program_id)


@router.get("/{program_id}/versions", response_model=list[Version], summary="Its versions")
async def list_versions(
    program_id: ProgramId, db: DbDep, settings: SettingsDep
) -> list[dict[str, Any]]:
    program = await load_program(db, settings.read_model_schema, program_id)
    rows = await views.versions(db, settings.read_model_schema, program_id)
    return [_version(row, program) for row in rows]


@router.get(
    "/{program_id}/versions/{number}",
    response_model=CompiledVersion,
    summary="One version with its compiled (saved DSPy) state",
)
async def get_version(
    program_id: ProgramId, number: VersionNumber, db: DbDep, settings: SettingsDep
) -> dict[str, Any]:
    program = await load_program(db, settings.read_model_schema, program_id)
    return _version(
        await _load_version(db, settings.read_model_schema, program_id, number), program
    )


@router.get(
    "/{program_id}/schema",
    response_model=ProgramSchema,
    summary="JSON Schema of the program's inputs and outputs",
)
async def get_schema(
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    version: Annotated[
        int | None, Query(ge=1, le=2_147_483_647, description="Default: the serving version.")
    ] = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    program = await load_program(db, schema, program_id)
    number = version or program["deployed_version"] or program["latest_version"]
    # Compiled once by the projector when it wrote the version's row.
    row = await views.version_schemas(db, schema, program_id, number)
    if row is None:
        raise not_found(f"version {number} of program", program_id)
    # NULL: the signature did not compile (registration checks it, so never in practice).
    if row["input_schema"] is None:
        raise not_found("compilable signature of program", program_id)
    return {
        "program_id": program_id,
        "version": number,
        "signature": program["signature"],
        "input_schema": row["input_schema"],
        "output_schema": row["output_schema"],
    }


async def _load_version(
    conn: AsyncConnection, schema: str, program_id: str, number: int
) -> dict[str, Any]:
    row = await views.version(conn, schema, program_id, number)
    if row is None:
        raise not_found(f"version {number} of program", program_id)
    return row


def _version(row: dict[str, Any], program: dict[str, Any]) -> dict[str, Any]:
    return {**row, "deployed": program["deployed_version"] == row["number"]}
