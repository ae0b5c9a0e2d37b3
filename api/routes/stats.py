"""A program's execution statistics: overall, by version and by time bucket.

Served at `/programs/{id}/metrics` (the URL predates the name); `/metrics` is Prometheus's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from dspyops.api import arms, views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES
from dspyops.api.routes.programs import ProgramId, load_program

router = APIRouter(tags=["stats"], responses=COMMON_RESPONSES)

Bucket = Literal["minute", "hour", "day", "week"]


class Stats(BaseModel):
    count: int
    succeeded: int
    failed: int
    # Of finished executions; None when none finished.
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    tokens_per_execution: float | None
    # USD of the executions with a known price (null when none has one); `unpriced`
    # counts the ended executions without one, so a partial sum says so.
    cost_usd: float | None
    unpriced: int
    # Feedback (RecordFeedback) on these executions: how many, how many gave a score,
    # and the mean of those scores (on the program's feedback scale, 0..1 by default;
    # null when none did).
    feedback_count: int
    feedback_scored: int
    feedback_score_mean: float | None


class VersionStats(Stats):
    version: int
    # Mean latency (the comparison's differences are of means).
    latency_mean_ms: float | None = None


class VersionComparison(BaseModel):
    """`version` minus `baseline_version`, each with its 95 % interval (api/arms.py:
    normal approximation; null where either side has fewer than 2 to measure)."""

    version: int
    baseline_version: int
    success_rate_diff: float | None
    success_rate_diff_ci95: tuple[float, float] | None
    latency_mean_diff_ms: float | None
    latency_mean_diff_ms_ci95: tuple[float, float] | None
    feedback_score_diff: float | None
    feedback_score_diff_ci95: tuple[float, float] | None


class BucketStats(Stats):
    bucket_start: datetime


# Named in the OpenAPI document as it always was; the route keeps its URL too.
class ProgramMetrics(BaseModel):
    program_id: str
    bucket: Bucket
    overall: Stats
    by_version: list[VersionStats]
    by_time: list[BucketStats]
    # Every other version with executions against the baseline: the arms of a traffic
    # split side by side. Empty without a baseline (no deployed version, none given).
    comparison: list[VersionComparison] = []


@router.get(
    "/programs/{program_id}/metrics",
    response_model=ProgramMetrics,
    summary="Count, success rate, p50/p95 latency, tokens per execution, cost and feedback",
)
async def program_stats(
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    bucket: Annotated[Bucket, Query(description="Width of the time buckets.")] = "hour",
    since: Annotated[datetime | None, Query(description="Requested at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Requested before.")] = None,
    baseline: Annotated[
        int | None,
        Query(ge=1, description="The version the others are compared with (default: deployed)."),
    ] = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    program = await load_program(db, schema, program_id)
    found = await views.execution_stats(
        db, schema, program_id, bucket=bucket, since=since, until=until
    )
    overall = found["overall"]
    empty = {
        "count": 0,
        "succeeded": 0,
        "failed": 0,
        "success_rate": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "tokens_per_execution": None,
        "cost_usd": None,
        "unpriced": 0,
        "feedback_count": 0,
        "feedback_scored": 0,
        "feedback_score_mean": None,
    }
    by_version = found["by_version"]
    reference = baseline if baseline is not None else program["deployed_version"]
    base = next((row for row in by_version if row["k"] == reference), None)
    comparison = (
        []
        if base is None
        else [arms.difference(row, base) for row in by_version if row is not base]
    )
    return {
        "program_id": program_id,
        "bucket": bucket,
        "overall": overall[0] if overall else empty,
        "by_version": [{**row, "version": row["k"]} for row in by_version],
        "by_time": [{**row, "bucket_start": row["k"]} for row in found["by_time"]],
        "comparison": comparison,
    }
