"""Request counts and latency per route, for /metrics (``metrics.API_*``).

A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task and a stream per
request, a visible share of a read that takes a millisecond.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dspyops import metrics


def record(scope: Scope, status: int, seconds: float) -> None:
    # The path template, not the raw path: ids would explode the label set.
    route = getattr(scope.get("route"), "path", "unmatched")
    metrics.API_REQUESTS.labels(scope["method"], route, str(status)).inc()
    metrics.API_REQUEST_SECONDS.labels(scope["method"], route).observe(seconds)


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            record(scope, status["code"], time.perf_counter() - started)
