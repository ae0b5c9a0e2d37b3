"""An execution's trace (runtime/trace.py's JSON) laid out for the page: each span with
its place on the execution's timeline, as fractions of the whole, for its timing bar."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# The timing bars' drawing width (an SVG viewBox: no inline style, the CSP allows it).
BAR_WIDTH = 1000


@dataclass(frozen=True)
class SpanView:
    kind: str
    name: str
    start_ms: float
    latency_ms: float | None
    model: str | None
    tokens: int | None
    error: str | None
    retrieved: str | None
    # On the bar: where the span starts and how long it is, in BAR_WIDTH units.
    bar_x: int
    bar_width: int
    children: list[SpanView] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.kind if self.name in ("", self.kind) else f"{self.kind} {self.name}"


def trace_view(trace: dict[str, Any] | None) -> SpanView | None:
    if not trace:
        return None
    total = max((_end(span) for span in _walk(trace)), default=0.0) or 1.0
    return _view(trace, total)


def span_count(view: SpanView | None) -> int:
    if view is None:
        return 0
    return 1 + sum(span_count(child) for child in view.children)


def _view(span: dict[str, Any], total: float) -> SpanView:
    start = float(span.get("start_ms") or 0.0)
    latency = span.get("latency_ms")
    width = (float(latency) if latency is not None else 0.0) / total * BAR_WIDTH
    usage = span.get("usage") or {}
    error = span.get("error")
    retrieved = None
    if span["kind"] == "retrieval":
        retrieved = (
            f"{span.get('corpus')} v{span.get('corpus_version')}: "
            f"{', '.join(map(str, span.get('document_ids') or []))}"
        )
    return SpanView(
        kind=span["kind"],
        name=span.get("name") or "",
        start_ms=start,
        latency_ms=None if latency is None else float(latency),
        model=span.get("model"),
        tokens=usage.get("total_tokens"),
        error=f"{error.get('type')}: {error.get('message')}" if error else None,
        retrieved=retrieved,
        bar_x=min(round(start / total * BAR_WIDTH), BAR_WIDTH - 1),
        # At least one unit, so an instant span still shows where it happened.
        bar_width=max(round(width), 1),
        children=[_view(child, total) for child in span.get("children", [])],
    )


def _end(span: dict[str, Any]) -> float:
    return float(span.get("start_ms") or 0.0) + float(span.get("latency_ms") or 0.0)


def _walk(span: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield span
    for child in span.get("children", []):
        yield from _walk(child)
