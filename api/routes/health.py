"""/health: Kafka, PostgreSQL, the projection lag, and the worker's and projector's
status; the one route needing no token."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import SettingsDep
from dspyops.api.kafka_check import kafka_answers
from dspyops.api.worker_group import WorkerGroup, worker_group, worker_group_id

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


class TopicLag(BaseModel):
    topic: str
    partitions: int
    # Records on those partitions past the group's committed offsets.
    lag: int


class Worker(BaseModel):
    # From the worker's consumer group as the broker describes it: running (Stable),
    # rebalancing (PreparingRebalance, CompletingRebalance), stopped (Empty, Dead: no
    # member), unknown (Kafka did not answer within 2 s, or refused to describe it).
    status: Literal["running", "rebalancing", "stopped", "unknown"]
    group: str
    # The broker's word for the group's state; null when unknown. Members' client ids and
    # hosts are on the console's health page only: /health answers without a token.
    state: str | None
    members: int | None
    lag: int | None
    topics: list[TopicLag]


class Projector(BaseModel):
    # stopped: no projector session connected for this read schema; behind: one is,
    # events wait and none was applied for 10 s; running: otherwise; unknown: PostgreSQL
    # did not answer.
    status: Literal["running", "behind", "stopped", "unknown"]
    connected: int | None
    # When the read side last applied a batch of events.
    applied_at: datetime | None


class Health(BaseModel):
    # ok; degraded when a dependency is down (503) or the read models skipped events
    # (200: they still serve, but are missing what those events held). The worker's and
    # projector's status is reported beside it, not folded in: an API runs and serves
    # with neither (a stopped worker is a fact to show, not an unhealthy API).
    status: str
    postgres: bool
    kafka: bool
    projection: Projection | None
    worker: Worker
    projector: Projector


def worker_status(group: str, found: WorkerGroup | None) -> dict[str, Any]:
    """`Worker`'s fields; unknown, never healthy, when Kafka did not describe the group."""
    if found is None:
        return {
            "status": "unknown",
            "group": group,
            "state": None,
            "members": None,
            "lag": None,
            "topics": [],
        }
    return {
        "status": found.status,
        "group": group,
        "state": found.state,
        "members": len(found.members),
        "lag": found.lag,
        "topics": [vars(t) for t in found.lags],
    }


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is down"}},
    summary="Kafka, PostgreSQL, projection lag, worker and projector status",
)
async def health(request: Request, response: Response, settings: SettingsDep) -> dict[str, Any]:
    projection = None
    projector: dict[str, Any] = {"status": "unknown", "connected": None, "applied_at": None}
    postgres = True
    try:
        async with request.app.state.pool.connection(timeout=2.0) as conn:
            projection = await views.projection_lag(
                conn, settings.event_store_schema, settings.read_model_schema
            )
            projector = vars(await views.projector(conn, settings.read_model_schema, projection))
    except Exception:
        # A health check reports, never raises: any database failure is "down".
        postgres = False
    group = worker_group_id(settings.topic_prefix)
    kafka, found = await asyncio.gather(
        kafka_answers(settings.bootstrap_servers, settings.kafka_security),
        worker_group(settings.bootstrap_servers, settings.kafka_security, group),
    )
    up = postgres and kafka
    if not up:
        response.status_code = 503
    complete = projection is None or not projection["skipped"]
    return {
        "status": "ok" if up and complete else "degraded",
        "postgres": postgres,
        "kafka": kafka,
        "projection": projection,
        "worker": worker_status(group, found),
        "projector": projector,
    }
