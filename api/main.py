"""The read-only query API: one router per resource over the projections' tables, and
the web console under /ui (`api.ui`).

Writes are Kafka commands, never HTTP: only GET routes exist, so any other verb on a
known path answers 405. The console's login and logout forms are the one exception: they
set or clear a cookie and write nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import Depends, FastAPI, Request, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dspyops.api import json_columns
from dspyops.api.deps import require_token
from dspyops.api.routes import (
    audit,
    corpora,
    datasets,
    executions,
    health,
    programs,
    prometheus,
    runs,
    serving,
    stats,
)
from dspyops.api.telemetry import RequestMetricsMiddleware
from dspyops.api.ui import console
from dspyops.settings import Settings, get_settings
from dspyops.tracing import Tracing


def create_app(settings: Settings | None = None, tracing: Tracing | None = None) -> FastAPI:
    """The read API; ``tracing`` defaults to what the OTEL_* variables ask for."""
    settings = settings or get_settings()
    tracing = tracing or Tracing.from_environment("dspyops-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.effective_database_url,
            min_size=settings.api_pool_size,
            max_size=settings.api_pool_size,
            open=False,
            # A request waits this long for a connection before answering 503.
            timeout=settings.api_db_wait_s,
            kwargs={"autocommit": True},
            configure=json_columns.configure,
        )
        # A database that is down at start must not stop the API: /health reports it.
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    guarded_docs = bool(settings.api_token)
    app = FastAPI(
        title="dspyops read API",
        version="1",
        description="Read-only views of programs, what serves them, executions, datasets, "
        "corpora, runs and the audit trail, built from the event store. Writes are Kafka "
        "commands.",
        lifespan=lifespan,
        # With a token, the documents are served below behind it like every route but /health.
        docs_url=None if guarded_docs else "/docs",
        redoc_url=None if guarded_docs else "/redoc",
        openapi_url=None if guarded_docs else "/openapi.json",
    )
    app.state.settings = settings
    app.add_middleware(RequestMetricsMiddleware, tracing=tracing)
    app.add_exception_handler(psycopg.DataError, _bad_value)
    app.add_exception_handler(psycopg.errors.UndefinedTable, _not_built)
    app.add_exception_handler(psycopg.errors.UndefinedColumn, _outdated)
    app.add_exception_handler(psycopg.OperationalError, _unavailable)
    app.add_exception_handler(PoolTimeout, _unavailable)
    app.include_router(health.router)
    # Declared only when a token is configured, so the OpenAPI document tells the truth.
    guarded = [Depends(require_token)] if settings.api_token else []
    routers = (programs, serving, executions, stats, datasets, corpora, runs, audit, prometheus)
    for module in routers:
        app.include_router(module.router, dependencies=guarded)
    if guarded_docs:
        _add_guarded_docs(app)
    console.mount(app)
    return app


def _add_guarded_docs(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)


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


async def _outdated(request: Request, exc: Exception) -> JSONResponse:
    # Read tables an earlier layout made, not yet upgraded by a projector of this one.
    return JSONResponse(
        {
            "detail": "the read models were made by an earlier version: start `dspyops "
            "projector` (it upgrades them) or run `dspyops projections rebuild`"
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The reason stays in the server log: it may name hosts the client need not know.
    return JSONResponse(
        {"detail": "the read database is unavailable; try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )
