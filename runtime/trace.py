"""The trace of one execution: every step, predictor, LM call, tool and retrieval, nested.

A `TraceRecorder` is a DSPy callback made for one execution and given to it with
`dspy.context(callbacks=[...])`: DSPy calls it as each module, LM call and tool call
starts and ends, and it builds a tree of spans with their timing. Token usage is
attributed to the LM call it belongs to through `SpanUsage`, the usage tracker DSPy
reports to while the call is open. Values kept in a span are bounded (long text cut,
long lists shortened) so a trace stays small enough to be an event: the full outputs are
the execution's own.

A span is a JSON object: `kind` (program, step, predictor, module, lm, tool, retrieval),
`name`, `type` (the module's class), `start_ms` (from the execution's start),
`latency_ms`, `inputs`, `outputs`, `error` ({type, message} or null), `usage` (prompt,
completion, total tokens: of the call for an LM span, summed for the others), `model`
(LM spans), `corpus`/`document_ids` (retrieval spans), `children`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback
from dspy.utils.usage_tracker import UsageTracker
from pydantic_core import to_jsonable_python

MAX_TEXT = 1_000
MAX_ITEMS = 20
MAX_DEPTH = 4
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class Span:
    kind: str
    name: str
    type: str
    start: float
    inputs: Any = None
    outputs: Any = None
    error: dict[str, str] | None = None
    end: float | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list)


class TraceRecorder(BaseCallback):
    def __init__(self, program: dspy.Module, *, steps: list[str] | None = None) -> None:
        self.started = time.monotonic()
        # Module -> its attribute path in the program ("answer", "answer.predict").
        self._names = {
            id(module): path.removeprefix("self").lstrip(".") or "program"
            for path, module in program.named_sub_modules()
        }
        self._steps = set(steps or ())
        self._open: dict[str, Span] = {}
        self._stack: list[Span] = []
        self.roots: list[Span] = []

    # --- what DSPy calls ------------------------------------------------------------

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        name = self._names.get(id(instance), type(instance).__name__)
        kind = self._kind(name, instance)
        span = self._start(call_id, kind, name, type(instance).__name__, inputs)
        if kind == "retrieval":
            span.extra["corpus"] = getattr(instance, "corpus", None)
            span.extra["corpus_version"] = getattr(instance, "version", None)

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        span = self._end(call_id, outputs, exception)
        if span is not None and span.kind == "retrieval" and outputs is not None:
            span.extra["document_ids"] = list(getattr(outputs, "document_ids", []) or [])

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        span = self._start(call_id, "lm", str(getattr(instance, "model", "lm")), "LM", None)
        span.model = str(getattr(instance, "model", type(instance).__name__))

    def on_lm_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, None, exception)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        name = str(getattr(instance, "name", type(instance).__name__))
        self._start(call_id, "tool", name, "Tool", inputs)

    def on_tool_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, outputs, exception)

    # --- usage, from SpanUsage ------------------------------------------------------

    def add_usage(self, usage: dict[str, Any]) -> None:
        for span in reversed(self._stack):
            if span.kind == "lm":
                for key in USAGE_KEYS:
                    value = usage.get(key)
                    if isinstance(value, int) and not isinstance(value, bool):
                        span.usage[key] = span.usage.get(key, 0) + value
                return

    # --- the tree -------------------------------------------------------------------

    def tree(self) -> dict[str, Any] | None:
        """The trace as JSON: the program's span (or a list if there were several)."""
        spans = [self._json(span) for span in self.roots]
        if not spans:
            return None
        return spans[0] if len(spans) == 1 else {"kind": "program", "children": spans}

    def failed_step(self) -> str | None:
        """The first step (or predictor) that raised: where a failed execution stopped."""
        for span in self._walk(self.roots):
            if span.error is not None and span.kind in {"step", "retrieval", "predictor"}:
                return span.name
        return None

    def summary(self) -> list[dict[str, Any]]:
        """Per step: name, kind, latency and tokens, for the result of the execution."""
        return [
            {
                "step": span.name,
                "type": span.type,
                "latency_ms": _ms(span),
                "total_tokens": _usage(span).get("total_tokens", 0),
                "error": span.error["type"] if span.error else None,
            }
            for span in self._walk(self.roots)
            if span.kind in {"step", "retrieval"} or (not self._steps and span.kind == "predictor")
        ]

    def _kind(self, name: str, instance: Any) -> str:
        if name == "program":
            return "program"
        if type(instance).__name__ == "Retrieve":
            return "retrieval"
        if name in self._steps:
            return "step"
        return "predictor" if isinstance(instance, dspy.Predict) else "module"

    def _start(
        self, call_id: str, kind: str, name: str, type_: str, inputs: dict[str, Any] | None
    ) -> Span:
        span = Span(kind, name, type_, time.monotonic(), inputs=bounded(inputs))
        (self._stack[-1].children if self._stack else self.roots).append(span)
        self._open[call_id] = span
        self._stack.append(span)
        return span

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> Span | None:
        span = self._open.pop(call_id, None)
        if span is None:
            return None
        span.end = time.monotonic()
        if outputs is not None and span.kind != "lm":
            span.outputs = bounded(dict(outputs.items()) if hasattr(outputs, "items") else outputs)
        if exception is not None:
            span.error = {"type": type(exception).__name__, "message": str(exception)[:MAX_TEXT]}
        if span in self._stack:
            # Ends arrive in order; an inner call that never ended is closed with it.
            del self._stack[self._stack.index(span) :]
        return span

    def _walk(self, spans: list[Span]) -> list[Span]:
        found: list[Span] = []
        for span in spans:
            found.append(span)
            found += self._walk(span.children)
        return found

    def _json(self, span: Span) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": span.kind,
            "name": span.name,
            "type": span.type,
            "start_ms": round((span.start - self.started) * 1000, 3),
            "latency_ms": _ms(span),
            "inputs": span.inputs,
            "outputs": span.outputs,
            "error": span.error,
            "usage": _usage(span),
            **({"model": span.model} if span.model else {}),
            **span.extra,
            "children": [self._json(child) for child in span.children],
        }
        return body


class SpanUsage(UsageTracker):
    """DSPy's usage tracker that also gives each LM call's usage to the open LM span."""

    def __init__(self, recorder: TraceRecorder) -> None:
        super().__init__()
        self._recorder = recorder

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        super().add_usage(lm, usage_entry)
        self._recorder.add_usage(usage_entry)


def _ms(span: Span) -> float | None:
    return None if span.end is None else round((span.end - span.start) * 1000, 3)


def _usage(span: Span) -> dict[str, int]:
    if span.kind == "lm":
        return dict(span.usage)
    total: dict[str, int] = {}
    for child in span.children:
        for key, value in _usage(child).items():
            total[key] = total.get(key, 0) + value
    return total


def bounded(value: Any, depth: int = 0) -> Any:
    """`value` as JSON, cut to a size a trace can carry."""
    value = to_jsonable_python(value, fallback=lambda v: type(v).__name__)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "..."
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        return "..."
    if isinstance(value, list):
        kept = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        return [*kept, f"... {len(value) - MAX_ITEMS} more"] if len(value) > MAX_ITEMS else kept
    if isinstance(value, dict):
        return {str(k): bounded(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    return value
