"""Turning a page's data into HTML: the Jinja2 environment, value formats, security headers.

Formats live here, as Python functions, so that templates stay markup and a table column
is one line (`api.ui.tables`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
# An en dash: what an empty cell shows.
DASH = "\u2013"

# Our own files only: scripts and styles from /ui/static, data: for the blank favicon.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(value: datetime | None) -> str:
    """A timestamp to the second, in UTC (the charts' axes are in UTC too)."""
    if value is None:
        return DASH
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f} ms"


def usd(value: float | None) -> str:
    return DASH if value is None else f"${value:,.4f}"


def score(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def percent(value: float | None) -> str:
    return DASH if value is None else f"{value:.1%}"


def plain(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def pretty(value: Any) -> str:
    """JSON for a <pre> block."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, ms=ms, usd=usd, score=score, percent=percent, plain=plain, pretty=pretty
    )
    return env


ENV = _environment()


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A whole page; every page extends `base.html`, which needs `title`."""
    settings = request.app.state.settings
    html = ENV.get_template(template).render(
        request=request, guarded=bool(settings.api_token), **context
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def fragment(template: str, **context: Any) -> str:
    """Markup without the frame (rows sent to a live page)."""
    return ENV.get_template(template).render(**context)
