"""The trace of one execution: every step, predictor, LM call, tool and retrieval, nested.

A `TraceRecorder` records one execution: `recording()` makes it the current one (a
context variable, so concurrent executions on one worker each see their own, as do the
threads a step starts with `asyncio.to_thread`, which copies the context), and the traced
classes of `runtime.traced` open and close spans in it, nesting them by the same context
variable. DSPy's own worker threads (`dspy.Parallel`, `ParallelExecutor`) are made to
run in the caller's context (`runtime.dspy_threads`), so their spans nest under the span
that started them; other threads a module starts without copying the context record no
spans.
A value a span cannot hold as JSON is kept as its type name (`safely_bounded`).

Token usage is attributed to the LM call it belongs to through `UsageTo`, the usage
tracker DSPy reports to while the call is open. Values kept in a span are bounded (long
text cut, long lists shortened) so a trace stays small enough to be an event: the full
outputs are the execution's own. Error messages in spans are redacted (the recorder's
`redact`) before they are cut, as exceptions' own text may echo a key.

A span is a JSON object: `kind` (program, step, predictor, module, lm, tool, retrieval),
`name`, `type` (the module's class), `start_ms` (from the execution's start),
`latency_ms`, `inputs`, `outputs`, `error` ({type, message} or null), `usage` (prompt,
completion, total tokens: of the call for an LM span, summed for the others), `model`
(LM spans), `corpus`/`corpus_version`/`document_ids` (retrieval spans), `children`.
Sub-modules a program creates while it runs (not attributes when it was built) are not
traced on their own; their LM calls still are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.usage_tracker import UsageTracker
from pydantic_core import to_jsonable_python

MAX_TEXT = 1_000
MAX_ITEMS = 20
MAX_DEPTH = 4
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
# A module's (kind, name) in its program, set by `runtime.traced.instrument`.
LABEL = "_dspyops_span"


@dataclass
class Span:
    kind: str
    name: str
    type: str
    start: float
    owner: int = 0
    inputs: Any = None
    outputs: Any = None
    error: dict[str, str] | None = None
    end: float | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list)


# Each class made traced -> its traced subclass (runtime.traced).
TRACED: dict[type, type] = {}


@dataclass(frozen=True)
class Frame:
    recorder: TraceRecorder
    # The open span new spans nest under (None: the execution's top level).
    span: Span | None


current: ContextVar[Frame | None] = ContextVar("dspyops_trace", default=None)


class TraceRecorder:
    def __init__(self, *, redact: Callable[[str], str] | None = None) -> None:
        self.started = time.monotonic()
        self.started_ns = time.time_ns()
        self._redact = redact or (lambda text: text)
        self.roots: list[Span] = []

    @contextmanager
    def recording(self) -> Iterator[TraceRecorder]:
        """Record the traced calls made inside the block (and in tasks and threads it starts)."""
        token = current.set(Frame(self, None))
        try:
            yield self
        finally:
            current.reset(token)

    # --- usage, from UsageTo ------------------------------------------------------

    def add_usage(self, usage: dict[str, Any]) -> None:
        frame = current.get()
        span = frame.span if frame is not None and frame.recorder is self else None
        if span is None or span.kind != "lm":
            return
        for key in USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                span.usage[key] = span.usage.get(key, 0) + value

    # --- the tree -------------------------------------------------------------------

    def tree(self) -> dict[str, Any] | None:
        """The trace as JSON: the program's span (or a list if there were several)."""
        spans = [self._json(span) for span in self.roots]
        if not spans:
            return None
        return spans[0] if len(spans) == 1 else {"kind": "program", "children": spans}

    def failed_step(self) -> str | None:
        """The first step (or predictor) that raised: where a failed execution stopped."""
        for span in _walk(self.roots):
            if span.error is not None and span.kind in {"step", "retrieval", "predictor"}:
                return span.name
        return None

    def summary(self) -> list[dict[str, Any]]:
        """Per step (per predictor for a program without steps): name, kind, latency and
        tokens, for the result of the execution."""
        spans = _walk(self.roots)
        listed = {"step", "retrieval"}
        if not any(span.kind in listed for span in spans):
            listed = {"predictor"}
        return [
            {
                "step": span.name,
                "type": span.type,
                "latency_ms": _ms(span),
                "total_tokens": _usage(span).get("total_tokens", 0),
                "error": span.error["type"] if span.error else None,
            }
            for span in spans
            if span.kind in listed
        ]

    # --- what the traced classes (runtime.traced) call ---------------------------------

    def open_span(
        self, parent: Span | None, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Span:
        kind, name = label(instance)
        inputs: Any = None
        if kind != "lm":
            inputs = safely_bounded({**kwargs, "args": list(args)} if args else kwargs)
        span = Span(
            kind, name, base_class(type(instance)).__name__, time.monotonic(), id(instance), inputs
        )
        if kind == "lm":
            span.model = name
        elif kind == "retrieval":
            span.extra["corpus"] = getattr(instance, "corpus", None)
            span.extra["corpus_version"] = getattr(instance, "version", None)
        (parent.children if parent is not None else self.roots).append(span)
        return span

    def close_span(self, span: Span, outputs: Any, exception: BaseException | None) -> None:
        span.end = time.monotonic()
        if outputs is not None and span.kind != "lm":
            values = dict(outputs.items()) if hasattr(outputs, "items") else outputs
            span.outputs = safely_bounded(values)
            if span.kind == "retrieval":
                ids = getattr(outputs, "document_ids", []) or []
                span.extra["document_ids"] = safely_bounded(list(ids))
        if exception is not None:
            try:
                text = str(exception)
            except Exception:  # an exception whose __str__ fails still gets its type told
                text = ""
            message = self._redact(text)[:MAX_TEXT]
            span.error = {"type": type(exception).__name__, "message": message}

    def _json(self, span: Span) -> dict[str, Any]:
        return {
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


class UsageTo(UsageTracker):
    """DSPy's usage tracker that also hands each LM response's usage to `sink`: the
    recorder's open LM span (`TraceRecorder.add_usage`), a run's spend
    (`RunState.add_usage`)."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self._sink = sink
        # Shared with DSPy's worker threads (below), which may still add usage while the
        # execution that timed out reads its totals.
        self._lock = threading.Lock()

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        with self._lock:
            super().add_usage(lm, usage_entry)
        self._sink(usage_entry)

    def totals(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """The totals per LM and a copy of every entry, read together under the lock."""
        with self._lock:
            entries = {lm: list(found) for lm, found in self.usage_data.items()}
            return self.get_total_tokens(), entries

    def __deepcopy__(self, memo: dict[int, Any]) -> UsageTo:
        # DSPy's worker threads get a deep copy of the tracker and never add its counts
        # back; this one is the execution's (or the run's) account: shared, not copied
        # (runtime.dspy_threads).
        return self


def base_class(cls: type) -> type:
    return cls.__bases__[0] if cls in TRACED.values() else cls


def label(instance: Any) -> tuple[str, str]:
    if isinstance(instance, dspy.BaseLM):
        return "lm", str(getattr(instance, "model", type(instance).__name__))
    if isinstance(instance, dspy.Tool):
        return "tool", str(getattr(instance, "name", None) or base_class(type(instance)).__name__)
    label = getattr(instance, LABEL, None)
    return label if label is not None else ("module", base_class(type(instance)).__name__)


def _walk(spans: list[Span]) -> list[Span]:
    found: list[Span] = []
    for span in spans:
        found.append(span)
        found += _walk(span.children)
    return found


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


def safely_bounded(value: Any) -> Any:
    """`bounded`, or the value's type name when it cannot be made JSON (bytes that are not
    UTF-8, a circular structure): recording a trace must never fail the program."""
    try:
        return bounded(value)
    except Exception:
        return f"<{type(value).__name__}>"


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
