"""/metrics: the read side's gauges and the API's request metrics (prometheus-client)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
    # The read side's figures are read at each scrape: they are the database's, not this
    # process's, so every API worker says the same. Metric families made here, not Gauge
    # objects, which in multi-process mode would write per-process files that outlive it.
    schema = settings.read_model_schema
    lag = await views.projection_lag(db, settings.event_store_schema, schema)
    values = {
        "position": lag["position"],
        "lag_events": lag["lag"],
        "skipped_events": lag["skipped"],
    }
    families = [
        GaugeMetricFamily(f"dspyops_projection_{name}", help_text, value=values[name])
        for name, help_text in PROJECTION_GAUGES
    ]
    if lag["built"]:
        families += await _row_counts(db, schema)
    scrape = CollectorRegistry()
    scrape.register(_Families(families))
    body = generate_latest(scrape) + metrics.exposition(metrics.API)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Families(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self.families)


async def _row_counts(db: Any, schema: str) -> list[GaugeMetricFamily]:
    families = []
    for table, name, what in ROW_COUNTS:
        family = GaugeMetricFamily(name, f"{what} in the read model by status.", labels=["status"])
        for row in await views.count_by_status(db, schema, table):
            family.add_metric([row["status"]], row["n"])
        families.append(family)
    return families
