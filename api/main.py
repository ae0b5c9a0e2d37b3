"""The read-only query API: one router per resource over the projections' tables.

Writes are Kafka commands, never HTTP: only GET routes exist, so any other verb on a
known path answers 405.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.deps import require_token
from api.routes import (
    audit,
    datasets,
    executions,
    health,
    metrics,
    programs,
    prometheus,
    runs,
)
from api.telemetry import RequestStats, RequestStatsMiddleware
from settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.effective_database_url,
            min_size=settings.api_pool_size,
            max_size=settings.api_pool_size,
            open=False,
            # A request waits this long for a connection before answering 503.
            timeout=5.0,
            kwargs={"autocommit": True},
        )
        # A database that is down at start must not stop the API: /health reports it.
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="dspyops read API",
        version="1",
        description="Read-only views of programs, executions, datasets, runs and the audit "
        "trail, built from the event store. Writes are Kafka commands.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.request_stats = RequestStats()
    app.add_middleware(RequestStatsMiddleware, stats=app.state.request_stats)
    app.add_exception_handler(psycopg.DataError, _bad_value)
    app.add_exception_handler(psycopg.errors.UndefinedTable, _not_built)
    app.add_exception_handler(psycopg.OperationalError, _unavailable)
    app.add_exception_handler(PoolTimeout, _unavailable)
    app.include_router(health.router)
    # Declared only when a token is configured, so the OpenAPI document tells the truth.
    guarded = [Depends(require_token)] if settings.api_token else []
    for module in (programs, executions, metrics, datasets, runs, audit, prometheus):
        app.include_router(module.router, dependencies=guarded)
    return app


async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # A value PostgreSQL cannot take (one the parameter checks let through) is the
    # client's error, not the server's.
    return JSONResponse(
        {"detail": f"a parameter value is not acceptable: {exc}"},
        status_code=status.HTTP_400_BAD_REQUEST,
    )


async def _not_built(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "the read models are not built yet: start `dspyops projector`"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The reason stays in the server log: it may name hosts the client need not know.
    return JSONResponse(
        {"detail": "the read database is unavailable; try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )
