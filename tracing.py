"""OpenTelemetry spans for dspyops' processes, made by hand; off unless configured.

Configured only by the standard variables. Tracing is on when ``OTEL_TRACES_EXPORTER``
is ``otlp`` or ``console``, or when it is unset and an OTLP endpoint is
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``); the SDK
itself reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``
(and ``_ARG``), ``OTEL_BSP_*`` and the exporter's headers and timeout. OTLP goes over
HTTP with protobuf. Off, no span object is made: each hook is one attribute test.

Every span is made by hand: ids, the provider's sampler for a unit of work's first span,
made current for what nests inside (in a context variable of dspyops' own; a unit of
work's first span in OpenTelemetry's context too), and a finished ``ReadableSpan``
handed to the span processor at the end. The SDK's live spans, with their locks and
per-span checks, cost several times more on a worker's hot path. OTLP
goes through ``otlp.OtlpSpanExporter``: the SDK's exporter with a cheaper encoding. The
worker's command spans are ``consumers.telemetry``'s; the API's request spans
``api.telemetry``'s; the projector's batch spans ``projections.run``'s.

This module is long because it reads W3C contexts and makes spans by hand, as above.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import Any, Self, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, StaticSampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from dspyops.events.envelope import TRACEPARENT, TRACESTATE

log = logging.getLogger(__name__)

PROPAGATOR = TraceContextTextMapPropagator()
SCOPE = InstrumentationScope("dspyops")
# Spans waiting for export; the SDK's default (2,048) drops spans under a burst of
# executions (about ten spans each). OTEL_BSP_MAX_QUEUE_SIZE still decides when set.
MAX_QUEUE = 16_384
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
# A span's resource when tracing is off (it is never exported).
_NO_RESOURCE = Resource.get_empty()
# What a span's block gets when tracing is off or the trace is not sampled.
OFF: AbstractContextManager[object] = nullcontext()


def tracing_configured(environ: dict[str, str] | None = None) -> str | None:
    """The exporter the OTEL_* variables ask for (``otlp`` or ``console``), else None."""
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in {"otlp", "console"}:
        return exporter
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return "otlp" if not exporter and endpoint else None


# What W3C contexts were read as: a worker reads a command's context in several hooks
# (its log fields, its span, what its results carry), and the publish span reads the one
# the command's span wrote. Bounded: emptied when full, and short ones only (the API
# passes on a request's headers, which can be of any length).
_PARSED: dict[tuple[str, str | None], SpanContext | None] = {}
_PARSED_MAX = 4096
_REMEMBERED_CHARS = 512
_NO_PARENT = otel_context.Context()


def parse_traceparent(traceparent: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The remote span a W3C ``traceparent`` (with its ``tracestate``) names, as
    OpenTelemetry's propagator reads it; None when it names none."""
    if not traceparent:
        return None
    key = (traceparent, tracestate)
    try:
        return _PARSED[key]
    except KeyError:
        pass
    carrier = {TRACEPARENT: traceparent}
    if tracestate:
        carrier[TRACESTATE] = tracestate
    context = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    parsed = context if context.is_valid else None
    if len(traceparent) <= _REMEMBERED_CHARS and len(tracestate or "") <= _REMEMBERED_CHARS:
        _remember(key, parsed)
    return parsed


def _remember(key: tuple[str, str | None], parsed: SpanContext | None) -> None:
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[key] = parsed


def links_to(traceparents: Iterable[str]) -> list[Link]:
    """Span links to the W3C contexts given; any that does not parse is left out."""
    return [Link(parsed) for tp in traceparents if (parsed := parse_traceparent(tp)) is not None]


def current_span_context() -> SpanContext | None:
    """The context of the current span (a ``continue_trace`` or ``stage`` block's), or
    None outside any."""
    span = _CURRENT.get()
    return None if span is None else span._context


def current_traceparent() -> str | None:
    """The current span's W3C trace context, or None outside any span."""
    span = _CURRENT.get()
    if span is None:
        return None
    if span._traceparent is None:  # asked for by each message a command causes
        trace_id, span_id, _, flags, _, _ = span._context
        # What PROPAGATOR.inject writes as traceparent, without its carrier.
        value = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
        if (value, None) not in _PARSED:
            # What reading it back gives (the span that publishes a result reads it).
            _remember((value, None), SpanContext(trace_id, span_id, True, flags))
        span._traceparent = value
    return span._traceparent


def span_context(
    trace_id: int, span_id: int, flags: TraceFlags, trace_state: TraceState | None = None
) -> SpanContext:
    """``SpanContext(trace_id, span_id, False, flags, trace_state)`` for ids known to be
    valid (made here, or read from a valid context), without the constructor's checks:
    a third of the cost of a span's bookkeeping. A test compares both."""
    state = DEFAULT_TRACE_STATE if trace_state is None else trace_state
    return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state, True))


def fixed_decisions(sampler: Sampler) -> dict[bool | None, bool]:
    """Whether ``sampler`` samples a unit of work's first span, for each parent that span
    can have (None: none; True or False: a remote parent, sampled or not), where that
    does not depend on the span: the SDK's always-on and always-off samplers, and its
    parent-based one delegating to them (``OTEL_TRACES_SAMPLER`` ``always_on``,
    ``parentbased_always_on``, the default, and a sampled parent under
    ``parentbased_traceidratio``). Asking the sampler costs a quarter of a span's
    bookkeeping; its answer is the same. Methods, not classes, are compared: a subclass
    that decides otherwise is asked."""
    fixed: dict[bool | None, bool] = {}
    for parent in (None, True, False):
        decider = sampler
        if type(decider).should_sample is ParentBased.should_sample:
            based = cast(ParentBased, decider)
            decider = {
                None: based._root,
                True: based._remote_parent_sampled,
                False: based._remote_parent_not_sampled,
            }[parent]
        if type(decider).should_sample is StaticSampler.should_sample:
            fixed[parent] = cast(StaticSampler, decider)._decision.is_sampled()
    return fixed


class Tracing:
    """A process's spans; ``Tracing()`` is off."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._processors: list[SpanProcessor] = []
        # What each processor is handed a finished, sampled span through.
        self._sinks: list[Callable[[ReadableSpan], None]] = []
        self._fixed = {} if provider is None else fixed_decisions(provider.sampler)
        self._resource = _NO_RESOURCE if provider is None else provider.resource

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, provider: TracerProvider) -> Self:
        """On, exporting through ``exporter`` in batches (tests give their own)."""
        queue = None if "OTEL_BSP_MAX_QUEUE_SIZE" in os.environ else MAX_QUEUE
        processor = BatchSpanProcessor(exporter, max_queue_size=queue)
        return cls.with_processor(processor, provider)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, provider: TracerProvider) -> Self:
        provider.add_span_processor(processor)
        tracing = cls(provider)
        tracing._processors.append(processor)
        if type(processor) is BatchSpanProcessor:
            # Its queue directly: ``on_end`` only asks, through three properties, whether
            # the span is sampled, which every span handed on here is.
            tracing._sinks.append(processor._batch_processor.emit)
        else:
            tracing._sinks.append(processor.on_end)
        return tracing

    @classmethod
    def from_environment(cls, service_name: str) -> Self:
        """On as the OTEL_* variables say (``service_name`` unless OTEL_SERVICE_NAME)."""
        exporter = tracing_configured()
        if exporter is None:
            return cls()
        # OTEL_SERVICE_NAME or a service.name in OTEL_RESOURCE_ATTRIBUTES wins.
        named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        resource = Resource.create({} if named else {"service.name": service_name})
        provider = TracerProvider(resource=resource)
        if exporter == "console":
            return cls.with_exporter(ConsoleSpanExporter(), provider)
        # Imported only when used: the exporter pulls in protobuf and requests.
        from dspyops.otlp import OtlpSpanExporter

        return cls.with_exporter(OtlpSpanExporter(), provider)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    # --- spans -------------------------------------------------------------------------

    def continue_trace(
        self,
        traceparent: str | None,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        tracestate: str | None = None,
    ) -> AbstractContextManager[SpanDetails]:
        """The first span of a unit of work, current inside the block (OpenTelemetry's
        current span too): a child of the remote ``traceparent`` when it names one, else
        the root of a new trace, sampled as the provider's sampler decides.
        ``attributes`` become the span's own (callers pass a dict of their own)."""
        if self.provider is None:
            return nullcontext(SpanDetails(name, attributes))
        parent = parse_traceparent(traceparent, tracestate)
        trace_id = random.getrandbits(128) or 1 if parent is None else parent[0]
        fixed = self._fixed.get(None if parent is None else bool(parent[3] & 1))
        if fixed is not None:  # the sampler's decision, known without asking it
            sampled, trace_state = fixed, None if parent is None else parent[4]
        else:
            # What PROPAGATOR.extract gives: the parent alone, not what else is current.
            parent_context = (
                _NO_PARENT
                if parent is None
                else trace.set_span_in_context(NonRecordingSpan(parent), _NO_PARENT)
            )
            sampling = self.provider.sampler.should_sample(
                parent_context, trace_id, name, kind, attributes
            )
            if sampling.attributes:
                attributes.update(sampling.attributes)
            sampled, trace_state = sampling.decision.is_sampled(), sampling.trace_state
        context = span_context(
            trace_id,
            random.getrandbits(64) or 1,
            _SAMPLED if sampled else _NOT_SAMPLED,
            trace_state,
        )
        return SpanDetails(name, attributes, self, context, parent, kind, root=True)

    def stage(self, name: str) -> AbstractContextManager[object]:
        """A child of the current span (a worker's ``handle``, ``run``, ``record``)."""
        if self.provider is None:
            return OFF
        parent = _CURRENT.get()
        if parent is None or not parent._sampled:
            return OFF
        # Its parent's trace and trace state, as the SDK gives a child span.
        trace_id, _, _, _, trace_state, _ = parent._context
        context = span_context(trace_id, random.getrandbits(64) or 1, _SAMPLED, trace_state)
        return SpanDetails(name, {}, self, context, parent._context, SpanKind.INTERNAL)

    def resource(self) -> Resource:
        """The provider's resource (empty when off)."""
        return self._resource

    def emit(self, *spans: ReadableSpan) -> None:
        """Finished spans, sampled ones only, to every processor."""
        for sink in self._sinks:
            for span in spans:
                sink(span)


class SpanDetails(ReadableSpan):
    """A span while its block runs, and what the block may still change before it ends:
    its name, its attributes, its links (other traces it is about: a projector batch's
    commands), or ``dropped`` (not exported after all: a poll that found no work).

    Current inside the block (``current_span_context``, ``current_traceparent``, and a
    unit of work's first span as OpenTelemetry's current span too). When the block ends,
    it is finished in place and handed to the processors, if sampled and not dropped:
    a ``ReadableSpan`` as the SDK's own live spans are. Its fields are set here, not by
    ``ReadableSpan.__init__``, whose keyword handling cost as much as the rest of a
    span's bookkeeping (the SDK is pinned; tests/unit/test_tracing.py exports these
    through the SDK's console exporter, which reads every field). Tracing off,
    ``continue_trace`` gives one that is no span at all."""

    _context: SpanContext  # never None here

    def __init__(
        self,
        name: str,
        attributes: dict[str, Any] | None = None,
        tracing: Tracing | None = None,
        context: SpanContext = INVALID_SPAN_CONTEXT,
        parent: SpanContext | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        *,
        root: bool = False,
    ) -> None:
        # ReadableSpan's fields.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] = {} if attributes is None else attributes
        self._events = ()
        self._links: list[Link] = []
        self._status = _UNSET
        self._start_time = None
        self._end_time = None
        self._resource = _NO_RESOURCE if tracing is None else tracing._resource
        self._instrumentation_scope = SCOPE
        self._instrumentation_info = None
        # Its own.
        self.dropped = False
        self._tracing = tracing
        self._sampled = bool(context[3] & 1)  # TraceFlags.sampled, without the property
        self._root = root
        self._traceparent: str | None = None  # its W3C context, once asked for

    # What the block may change (ReadableSpan's are read-only).
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        self._name = name

    @property
    def attributes(self) -> dict[str, Any]:
        return self._attributes

    @property
    def links(self) -> list[Link]:
        return self._links

    @links.setter
    def links(self, links: list[Link]) -> None:
        self._links = links

    def __enter__(self) -> SpanDetails:
        self._token = _CURRENT.set(self)
        if self._root:
            span = NonRecordingSpan(self._context)
            self._otel_token = otel_context.attach(trace.set_span_in_context(span))
        self._start_time = time.time_ns()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._end_time = time.time_ns()
        if self._root:
            otel_context.detach(self._otel_token)
        try:
            _CURRENT.reset(self._token)
        except (ValueError, RuntimeError):
            # Ended in another context than it began in (an async generator closed by
            # another task), or entered twice: logged, not raised, as OpenTelemetry's
            # ``detach`` does; the span still ends.
            log.exception("Failed to reset the current span %s", self._name)
        tracing = self._tracing
        if not self._sampled or self.dropped or tracing is None:
            return
        if exc_type is not None:
            self._status = Status(StatusCode.ERROR, exc_type.__name__)
        tracing.emit(self)


# The current span of dspyops' own (OpenTelemetry's context is set for a unit of work's
# first span only: setting it costs more than the rest of a span's bookkeeping).
_CURRENT: ContextVar[SpanDetails | None] = ContextVar("dspyops_current_span", default=None)
