"""The health page: PostgreSQL, Kafka, the projector's position and lag, what it skipped,
and executions and runs by status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import SettingsDep
from dspyops.api.kafka_check import kafka_answers
from dspyops.api.ui.columns import STATUS_COUNT_COLUMNS
from dspyops.api.ui.render import page
from dspyops.api.ui.tables import Table
from dspyops.projections.read_schema import EXECUTIONS, RUNS

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    projection: dict[str, Any] | None = None
    counts: list[Table] = []
    postgres = True
    try:
        async with request.app.state.pool.connection(timeout=2.0) as conn:
            projection = await views.projection_lag(
                conn, settings.event_store_schema, settings.read_model_schema
            )
            if projection["built"]:
                for title, table in (("Executions", EXECUTIONS), ("Runs", RUNS)):
                    rows = await views.count_by_status(conn, settings.read_model_schema, table)
                    counts.append(Table(f"{title} by status", STATUS_COUNT_COLUMNS, rows))
    except Exception:
        # Like /health: the page reports a database it cannot reach, never fails on it.
        postgres = False
    kafka = await kafka_answers(settings.bootstrap_servers, settings.kafka_security)
    return page(
        request,
        "health.html",
        title="Health",
        postgres=postgres,
        kafka=kafka,
        projection=projection,
        counts=counts,
    )
