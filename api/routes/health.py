"""/health: Kafka, PostgreSQL and the projection lag; the one route needing no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import SettingsDep
from dspyops.api.kafka_check import kafka_answers

router = APIRouter(tags=["health"])


class SkippedEvent(BaseModel):
    # Why it was skipped is in `projection_errors` (and the projector's log), not here:
    # /health answers without a token.
    position: int
    event_type: str
    error_type: str


class Projection(BaseModel):
    position: int
    head: int
    lag: int
    # False until a projector has created the read tables.
    built: bool
    # Events the projector could not apply and skipped (see `projection_errors`).
    skipped: int
    last_skipped: SkippedEvent | None


class Health(BaseModel):
    # ok; degraded when a dependency is down (503) or the read models skipped events
    # (200: they still serve, but are missing what those events held).
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
    kafka = await kafka_answers(settings.bootstrap_servers, settings.kafka_security)
    up = postgres and kafka
    if not up:
        response.status_code = 503
    complete = projection is None or not projection["skipped"]
    return {
        "status": "ok" if up and complete else "degraded",
        "postgres": postgres,
        "kafka": kafka,
        "projection": projection,
    }
