"""A program's execution metrics: overall, by version and by time bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from psycopg import sql
from pydantic import BaseModel

from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES
from dspyops.api.queries import fetch_all, table
from dspyops.api.routes.programs import ProgramId, load_program

router = APIRouter(tags=["metrics"], responses=COMMON_RESPONSES)

Bucket = Literal["minute", "hour", "day", "week"]
STATS = sql.SQL(
    "count(*) AS count, "
    "count(*) FILTER (WHERE status = 'succeeded') AS succeeded, "
    "count(*) FILTER (WHERE status = 'failed') AS failed, "
    "count(*) FILTER (WHERE status = 'succeeded')::float8 "
    "  / nullif(count(*) FILTER (WHERE status <> 'requested'), 0) AS success_rate, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms, "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms, "
    "coalesce(sum(total_tokens), 0)::float8 "
    "  / nullif(count(*) FILTER (WHERE status <> 'requested'), 0) AS tokens_per_execution"
)


class Stats(BaseModel):
    count: int
    succeeded: int
    failed: int
    # Of finished executions; None when none finished.
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    tokens_per_execution: float | None


class VersionStats(Stats):
    version: int


class BucketStats(Stats):
    bucket_start: datetime


class ProgramMetrics(BaseModel):
    program_id: str
    bucket: Bucket
    overall: Stats
    by_version: list[VersionStats]
    by_time: list[BucketStats]


@router.get(
    "/programs/{program_id}/metrics",
    response_model=ProgramMetrics,
    summary="Count, success rate, p50/p95 latency and tokens per execution",
)
async def program_metrics(
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    bucket: Annotated[Bucket, Query(description="Width of the time buckets.")] = "hour",
    since: Annotated[datetime | None, Query(description="Requested at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Requested before.")] = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    await load_program(db, schema, program_id)
    conditions = [sql.SQL("program_id = %s")]
    params: list[Any] = [program_id]
    if since is not None:
        conditions.append(sql.SQL("requested_at >= %s"))
        params.append(since)
    if until is not None:
        conditions.append(sql.SQL("requested_at < %s"))
        params.append(until)
    where = sql.SQL(" AND ").join(conditions)
    executions = table(schema, "executions")

    async def grouped(key: sql.Composable, extra: list[Any]) -> list[dict[str, Any]]:
        return await fetch_all(
            db,
            sql.SQL("SELECT {key} AS k, {stats} FROM {t} WHERE {w} GROUP BY 1 ORDER BY 1").format(
                key=key, stats=STATS, t=executions, w=where
            ),
            [*extra, *params],
        )

    overall = await grouped(sql.SQL("1"), [])
    by_version = await grouped(sql.SQL("version"), [])
    by_time = await grouped(sql.SQL("date_trunc(%s, requested_at)"), [bucket])
    empty = {
        "count": 0,
        "succeeded": 0,
        "failed": 0,
        "success_rate": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "tokens_per_execution": None,
    }
    return {
        "program_id": program_id,
        "bucket": bucket,
        "overall": overall[0] if overall else empty,
        "by_version": [{**row, "version": row["k"]} for row in by_version],
        "by_time": [{**row, "bucket_start": row["k"]} for row in by_time],
    }
