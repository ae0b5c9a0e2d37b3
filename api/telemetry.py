"""Request counts and durations per route, kept in-process for /metrics."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request, Response


@dataclass
class RequestStats:
    count: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[tuple[str, str, int], float] = field(default_factory=lambda: defaultdict(float))

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # The path template, not the raw path: ids would explode the label set.
        path = getattr(route, "path", "unmatched")
        key = (request.method, path, response.status_code)
        self.count[key] += 1
        self.seconds[key] += time.perf_counter() - started
        return response
