"""/metrics: the read side's gauges and the API's request metrics (prometheus-client)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from dspyops import metrics
from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES
from dspyops.projections.read_schema import EXECUTIONS, PROGRAMS

router = APIRouter(tags=["health"])

# The gauges read from the database at each scrape (beside metrics.API's).
PROJECTION_GAUGES = (
    ("position", "Last event position applied to the read models."),
    ("lag_events", "Events stored but not yet projected."),
    ("skipped_events", "Stored events the projector could not apply."),
)
ROW_COUNTS = (
    (EXECUTIONS, "dspyops_read_model_executions", "Executions"),
    (PROGRAMS, "dspyops_read_model_programs", "Programs"),
)
SCRAPED = tuple(f"dspyops_projection_{name}" for name, _ in PROJECTION_GAUGES) + tuple(
    name for _, name, _ in ROW_COUNTS
)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: COMMON_RESPONSES[401],
    },
    summary="Prometheus text format",
)
async def prometheus_metrics(db: DbDep, settings: SettingsDep) -> Response:
    # The read side's figures are read at each scrape, into a registry of this scrape's
    # own: they are the database's, not this process's, so every API worker says the same.
    schema = settings.read_model_schema
    scrape = CollectorRegistry()
    lag = await views.projection_lag(db, settings.event_store_schema, schema)
    values = {
        "position": lag["position"],
        "lag_events": lag["lag"],
        "skipped_events": lag["skipped"],
    }
    for name, help_text in PROJECTION_GAUGES:
        Gauge(f"dspyops_projection_{name}", help_text, registry=scrape).set(values[name])
    if lag["built"]:
        await _row_counts(db, schema, scrape)
    body = generate_latest(scrape) + metrics.exposition(metrics.API)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _row_counts(db: Any, schema: str, scrape: CollectorRegistry) -> None:
    for table, name, what in ROW_COUNTS:
        gauge = Gauge(name, f"{what} in the read model by status.", ["status"], registry=scrape)
        for row in await views.count_by_status(db, schema, table):
            gauge.labels(row["status"]).set(row["n"])
