"""The health page: PostgreSQL, Kafka, the worker's consumer group (api/worker_group.py),
the projector's status, position and lag, what it skipped, executions and runs by status,
and the dead letters (how many, and all their reasons, counted on from the load before:
api/dead_letters.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.dead_letters import DeadLetters, dead_letters
from dspyops.api.deps import SettingsDep
from dspyops.api.kafka_check import kafka_answers
from dspyops.api.ui.columns import (
    DEAD_LETTER_COLUMNS,
    STATUS_COUNT_COLUMNS,
    TOPIC_LAG_COLUMNS,
    WORKER_MEMBER_COLUMNS,
)
from dspyops.api.ui.render import page
from dspyops.api.ui.tables import Table
from dspyops.api.worker_group import worker_group, worker_group_id
from dspyops.events.topics import Topics
from dspyops.projections.lag import ProjectorStatus
from dspyops.projections.read_schema import EXECUTIONS, RUNS

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    projection: dict[str, Any] | None = None
    projector: ProjectorStatus | None = None
    counts: list[Table] = []
    postgres = True
    try:
        async with request.app.state.pool.connection(timeout=2.0) as conn:
            projection = await views.projection_lag(
                conn, settings.event_store_schema, settings.read_model_schema
            )
            projector = await views.projector(conn, settings.read_model_schema, projection)
            if projection["built"]:
                for title, table in (("Executions", EXECUTIONS), ("Runs", RUNS)):
                    rows = await views.count_by_status(conn, settings.read_model_schema, table)
                    counts.append(Table(f"{title} by status", STATUS_COUNT_COLUMNS, rows))
    except Exception:
        # Like /health: the page reports a database it cannot reach, never fails on it.
        postgres = False
    topic = Topics(settings.topic_prefix).deadletter
    group = worker_group_id(settings.topic_prefix)
    kafka, letters, worker = await asyncio.gather(
        kafka_answers(settings.bootstrap_servers, settings.kafka_security),
        dead_letters(
            settings.bootstrap_servers,
            settings.kafka_security,
            topic,
            tally=request.app.state.dead_letter_tallies.of(topic),
        ),
        worker_group(settings.bootstrap_servers, settings.kafka_security, group),
    )
    reasons = [{"reason": r, "n": n} for r, n in sorted(letters.reasons.items())] if letters else []
    return page(
        request,
        "health.html",
        title="Health",
        postgres=postgres,
        kafka=kafka,
        projection=projection,
        projector=projector,
        group=group,
        worker=worker,
        members=Table(
            "Members of the worker's group",
            WORKER_MEMBER_COLUMNS,
            [vars(m) for m in worker.members] if worker else [],
            empty="No member: no worker is consuming.",
        ),
        topic_lags=Table(
            "Worker lag by topic (records past its committed offsets)",
            TOPIC_LAG_COLUMNS,
            [vars(t) for t in worker.lags] if worker else [],
            empty="No offset committed yet.",
        ),
        counts=counts,
        topic=topic,
        letters=letters,
        reasons=Table(
            reasons_caption(letters),
            DEAD_LETTER_COLUMNS,
            reasons,
            empty="No dead letter.",
        ),
    )


def reasons_caption(letters: DeadLetters | None) -> str:
    if letters is None or letters.complete:
        return f"Reasons of all {letters.read if letters else 0:,} dead letters"
    return (
        f"Reasons of {letters.read:,} of {letters.total:,} dead letters, counted so far "
        "(each load counts on from the last, for up to 1.5 s)"
    )
