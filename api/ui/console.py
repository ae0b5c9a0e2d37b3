"""Mounting the console on the API: its pages behind the token rule, its static files,
and HTML answers (not JSON) for errors on its pages."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

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
    app.include_router(auth.router)
    for module in PAGES:
        app.include_router(module.router, dependencies=[Depends(auth.console_access)])
    app.add_api_route("/ui", _home, include_in_schema=False)
    app.add_exception_handler(auth.LoginRequired, auth.to_login)
    app.add_exception_handler(HTTPException, _error_page)


async def _home() -> Response:
    return RedirectResponse(auth.HOME)


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/ui/") or request.url.path.startswith("/ui/static/"):
        return await http_exception_handler(request, exc)
    return page(
        request, "error.html", exc.status_code, title=f"Error {exc.status_code}", detail=exc.detail
    )
