"""Mounting the console on the API: its pages behind the token rule, its static files,
and HTML answers (not JSON) for errors on its pages."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

from dspyops.api.dead_letters import Tallies
from dspyops.api.ui import (
    auth,
    compare,
    datasets,
    executions,
    health,
    live,
    programs,
    runs,
    trails,
)
from dspyops.api.ui.render import STATIC, page

PAGES = (programs, trails, compare, executions, runs, datasets, health, live)


def mount(app: FastAPI) -> None:
    # The library and our own script and stylesheet: code, no data, so no token.
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    # The health page's dead letters, counted on from one load to the next (per process).
    app.state.dead_letter_tallies = Tallies()
    app.include_router(auth.router)
    for module in PAGES:
        app.include_router(module.router, dependencies=[Depends(auth.console_access)])
    app.add_api_route("/ui", _home, include_in_schema=False)
    app.add_exception_handler(auth.LoginRequired, auth.to_login)
    # The API's own answers to a database it cannot use (503) or a value it refused (400):
    # the same status and detail, as a page on the console's paths.
    for error, answer in list(app.exception_handlers.items()):
        if isinstance(error, type) and issubclass(error, psycopg.Error | PoolTimeout):
            app.add_exception_handler(error, _as_page(answer))
    app.add_exception_handler(HTTPException, _error_page)
    app.add_exception_handler(RequestValidationError, _invalid_page)


async def _home() -> Response:
    return RedirectResponse(auth.HOME)


def _as_page(answer: Callable[[Request, Any], Response | Awaitable[Response]]) -> Any:
    async def answer_on_page(request: Request, exc: Exception) -> Response:
        given = answer(request, exc)
        if inspect.isawaitable(given):
            given = await given
        if not _on_page(request) or not isinstance(given, JSONResponse):
            return given
        detail = json.loads(bytes(given.body)).get("detail")
        code = given.status_code
        return page(request, "error.html", code, title=f"Error {code}", detail=detail)

    return answer_on_page


def _on_page(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/ui/") and not path.startswith("/ui/static/")


async def _invalid_page(request: Request, exc: Exception) -> Response:
    """A page's parameter out of its bounds (`?a=0`, a cursor that is no number): an HTML
    page that says which and why, with 400; the JSON routes keep FastAPI's 422."""
    assert isinstance(exc, RequestValidationError)
    if not _on_page(request):
        return await request_validation_exception_handler(request, exc)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'][1:]) or error['loc'][0]}: {error['msg']}"
        for error in exc.errors()
    ]
    return page(request, "error.html", 400, title="Error 400", detail="; ".join(problems))


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not _on_page(request):
        return await http_exception_handler(request, exc)
    return page(
        request, "error.html", exc.status_code, title=f"Error {exc.status_code}", detail=exc.detail
    )
