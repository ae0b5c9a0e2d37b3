"""/metrics: read-model gauges and API request counters in Prometheus text format."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES
from dspyops.api.telemetry import RequestStats
from dspyops.projections.read_schema import EXECUTIONS, PROGRAMS

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: COMMON_RESPONSES[401],
    },
    summary="Prometheus text format",
)
async def metrics(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    schema = settings.read_model_schema
    lag = await views.projection_lag(db, settings.event_store_schema, schema)
    lines = [
        "# HELP dspyops_projection_position Last event position applied to the read models.",
        "# TYPE dspyops_projection_position gauge",
        f"dspyops_projection_position {lag['position']}",
        "# HELP dspyops_projection_lag_events Events stored but not yet projected.",
        "# TYPE dspyops_projection_lag_events gauge",
        f"dspyops_projection_lag_events {lag['lag']}",
        "# HELP dspyops_projection_skipped_events Stored events the projector could not apply.",
        "# TYPE dspyops_projection_skipped_events gauge",
        f"dspyops_projection_skipped_events {lag['skipped']}",
    ]
    if lag["built"]:
        lines += await _row_counts(db, schema)
    lines += _request_lines(request.app.state.request_stats)
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _row_counts(db: Any, schema: str) -> list[str]:
    lines = [
        "# HELP dspyops_executions Executions in the read model by status.",
        "# TYPE dspyops_executions gauge",
    ]
    rows = await views.count_by_status(db, schema, EXECUTIONS)
    lines += [f'dspyops_executions{{status="{r["status"]}"}} {r["n"]}' for r in rows]
    lines += [
        "# HELP dspyops_programs Programs in the read model by status.",
        "# TYPE dspyops_programs gauge",
    ]
    rows = await views.count_by_status(db, schema, PROGRAMS)
    lines += [f'dspyops_programs{{status="{r["status"]}"}} {r["n"]}' for r in rows]
    return lines


def _request_lines(stats: RequestStats) -> list[str]:
    lines = [
        "# HELP dspyops_api_requests_total API requests by method, route and status.",
        "# TYPE dspyops_api_requests_total counter",
    ]
    for (method, path, code), n in sorted(stats.count.items()):
        lines.append(
            f'dspyops_api_requests_total{{method="{method}",route="{path}",status="{code}"}} {n}'
        )
    lines += [
        "# HELP dspyops_api_request_seconds_total Time spent answering, by the same labels.",
        "# TYPE dspyops_api_request_seconds_total counter",
    ]
    for (method, path, code), s in sorted(stats.seconds.items()):
        lines.append(
            f'dspyops_api_request_seconds_total{{method="{method}",route="{path}",'
            f'status="{code}"}} {s:.6f}'
        )
    return lines
