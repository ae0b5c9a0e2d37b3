"""Request counts and durations per route, kept in-process for /metrics.

A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task and a stream per
request, a visible share of a read that takes a millisecond.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Key = tuple[str, str, int]


class RequestStats:
    def __init__(self) -> None:
        self.count: dict[Key, int] = defaultdict(int)
        self.seconds: dict[Key, float] = defaultdict(float)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        # The path template, not the raw path: ids would explode the label set.
        path = getattr(scope.get("route"), "path", "unmatched")
        key = (scope["method"], path, status)
        self.count[key] += 1
        self.seconds[key] += seconds


class RequestStatsMiddleware:
    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

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
            self.stats.record(scope, status["code"], time.perf_counter() - started)
