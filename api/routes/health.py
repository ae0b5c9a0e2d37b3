"""/health: Kafka, PostgreSQL and the projection lag; the one route needing no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import SettingsDep
from dspyops.api.kafka_check import kafka_answers

router = APIRouter(tags=["health"])


class Projection(BaseModel):
    position: int
    head: int
    lag: int
    # False until a projector has created the read tables.
    built: bool


class Health(BaseModel):
    status: str
    postgres: bool
    kafka: bool
    projection: Projection | None


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is down"}},
    summary="Kafka, PostgreSQL and projection lag",
)
async def health(request: Request, response: Response, settings: SettingsDep) -> dict[str, Any]:
    projection = None
    postgres = True
    try:
        async with request.app.state.pool.connection(timeout=2.0) as conn:
            projection = await views.projection_lag(
                conn, settings.event_store_schema, settings.read_model_schema
            )
    except Exception:
        # A health check reports, never raises: any database failure is "down".
        postgres = False
    kafka = await kafka_answers(settings.bootstrap_servers)
    ok = postgres and kafka
    if not ok:
        response.status_code = 503
    return {
        "status": "ok" if ok else "degraded",
        "postgres": postgres,
        "kafka": kafka,
        "projection": projection,
    }
