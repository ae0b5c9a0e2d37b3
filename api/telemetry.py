"""Request counts and latency per route (``metrics.API_*``), and a span per request when
tracing is on (``tracing``): a server span named ``<METHOD> <route template>`` that
continues the request's W3C ``traceparent`` header.

A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task and a stream per
request, a visible share of a read that takes a millisecond.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dspyops import metrics
from dspyops.tracing import TRACEPARENT, TRACESTATE, Tracing


def route_of(scope: Scope) -> str:
    # The path template, not the raw path: ids would explode the label set.
    return str(getattr(scope.get("route"), "path", "unmatched"))


def record(scope: Scope, status: int, seconds: float) -> None:
    route = route_of(scope)
    metrics.API_REQUESTS.labels(scope["method"], route, str(status)).inc()
    metrics.API_REQUEST_SECONDS.labels(scope["method"], route).observe(seconds)


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, tracing: Tracing | None = None) -> None:
        self.app = app
        self.tracing = tracing or Tracing()

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

        method = scope["method"]
        headers = dict(scope.get("headers") or [])
        traceparent = headers.get(TRACEPARENT.encode(), b"").decode("latin-1") or None
        tracestate = headers.get(TRACESTATE.encode(), b"").decode("latin-1") or None
        attributes = {"http.request.method": method, "url.path": scope.get("path", "")}
        with self.tracing.continue_trace(
            traceparent, method, SpanKind.SERVER, attributes, tracestate
        ) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route = route_of(scope)
                # OpenTelemetry's HTTP convention: the method alone when no route matched.
                span.name = method if route == "unmatched" else f"{method} {route}"
                span.attributes.update(
                    {"http.route": route, "http.response.status_code": status["code"]}
                )
                record(scope, status["code"], time.perf_counter() - started)
