"""OpenTelemetry spans for dspyops' processes, made by hand; off unless configured.

Configured only by the standard variables. Tracing is on when ``OTEL_TRACES_EXPORTER``
is ``otlp`` or ``console``, or when it is unset and an OTLP endpoint is
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``); the SDK
itself reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``
(and ``_ARG``), ``OTEL_BSP_*`` and the exporter's headers and timeout. OTLP goes over
HTTP with protobuf. Off, no span object is made: each hook is one attribute test.

Every span is made by hand: ids, the provider's sampler for a unit of work's first span,
a non-recording span made current for what nests inside, and a finished
``ReadableSpan`` handed to the span processor at the end. The SDK's live spans, with
their locks and per-span checks, cost several times more on a worker's hot path. OTLP
goes through ``otlp.OtlpSpanExporter``: the SDK's exporter with a cheaper encoding. The
worker's command spans are ``consumers.telemetry``'s; the API's request spans
``api.telemetry``'s; the projector's batch spans ``projections.run``'s.

This module is long because it reads W3C contexts and makes spans by hand, as above.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
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

from dspyops.events.envelope import TRACEPARENT, TRACESTATE

PROPAGATOR = TraceContextTextMapPropagator()
SCOPE = InstrumentationScope("dspyops")
# Spans waiting for export; the SDK's default (2,048) drops spans under a burst of
# executions (about ten spans each). OTEL_BSP_MAX_QUEUE_SIZE still decides when set.
MAX_QUEUE = 16_384
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
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


@dataclass(slots=True)
class SpanDetails:
    """What the block of a span may still change before the span ends."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    # Not exported after all (a poll that found no work).
    dropped: bool = False
    # Other traces this span is about (a projector batch: the commands it applied).
    links: list[Link] = field(default_factory=list)


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


def current_traceparent() -> str | None:
    """The current span's W3C trace context, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    # What PROPAGATOR.inject writes as traceparent, without its carrier.
    value = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    if (value, None) not in _PARSED:
        # What reading it back gives (the span that publishes a result reads it).
        _remember(
            (value, None),
            SpanContext(context.trace_id, context.span_id, True, context.trace_flags),
        )
    return value


class Tracing:
    """A process's spans; ``Tracing()`` is off."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._processors: list[SpanProcessor] = []

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, provider: TracerProvider) -> Self:
        """On, exporting through ``exporter`` in batches (tests give their own)."""
        queue = None if "OTEL_BSP_MAX_QUEUE_SIZE" in os.environ else MAX_QUEUE
        processor = BatchSpanProcessor(exporter, max_queue_size=queue)
        provider.add_span_processor(processor)
        tracing = cls(provider)
        tracing._processors.append(processor)
        return tracing

    @classmethod
    def with_processor(cls, processor: SpanProcessor, provider: TracerProvider) -> Self:
        provider.add_span_processor(processor)
        tracing = cls(provider)
        tracing._processors.append(processor)
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
        """The first span of a unit of work, current inside the block: a child of the
        remote ``traceparent`` when it names one, else the root of a new trace, sampled
        as the provider's sampler decides."""
        details = SpanDetails(name, dict(attributes))
        if self.provider is None:
            return nullcontext(details)
        parent = parse_traceparent(traceparent, tracestate)
        if parent is None:
            parent_context = _NO_PARENT
            trace_id = random.getrandbits(128) or 1
        else:
            # What PROPAGATOR.extract gives: the parent alone, not what else is current.
            parent_context = trace.set_span_in_context(NonRecordingSpan(parent), _NO_PARENT)
            trace_id = parent.trace_id
        sampling = self.provider.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes
        )
        if sampling.attributes:
            details.attributes.update(sampling.attributes)
        return _OpenSpan(
            self,
            details,
            trace_id,
            parent,
            kind,
            sampling.decision.is_sampled(),
            sampling.trace_state,
        )

    def stage(self, name: str) -> AbstractContextManager[object]:
        """A child of the current span (a worker's ``handle``, ``run``, ``record``)."""
        if self.provider is None:
            return OFF
        parent = trace.get_current_span().get_span_context()
        if not parent.is_valid or not parent.trace_flags.sampled:
            return OFF
        return _OpenSpan(self, SpanDetails(name), parent.trace_id, parent, SpanKind.INTERNAL, True)

    def resource(self) -> Resource:
        assert self.provider is not None
        return self.provider.resource

    def emit(self, *spans: ReadableSpan) -> None:
        for processor in self._processors:
            for span in spans:
                processor.on_end(span)


class _OpenSpan:
    """A span while its block runs: current (as a non-recording span) so that nested
    stages and ``current_traceparent`` see it; handed to the processors as a finished
    ``ReadableSpan`` when the block ends, if sampled and not dropped. A plain class, not a
    generator: a worker opens four of these per command."""

    __slots__ = ("_context", "_details", "_kind", "_parent", "_start", "_token", "_tracing")

    def __init__(
        self,
        tracing: Tracing,
        details: SpanDetails,
        trace_id: int,
        parent: SpanContext | None,
        kind: SpanKind,
        sampled: bool,
        trace_state: TraceState | None = None,
    ) -> None:
        self._tracing = tracing
        self._details = details
        self._parent = parent
        self._kind = kind
        flags = _SAMPLED if sampled else _NOT_SAMPLED
        span_id = random.getrandbits(64) or 1
        self._context = SpanContext(trace_id, span_id, False, flags, trace_state)

    def __enter__(self) -> SpanDetails:
        span = NonRecordingSpan(self._context)
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._start = time.time_ns()
        return self._details

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        end = time.time_ns()
        otel_context.detach(self._token)
        details = self._details
        if not self._context.trace_flags.sampled or details.dropped:
            return
        tracing = self._tracing
        assert tracing.provider is not None
        tracing.emit(
            ReadableSpan(
                details.name,
                context=self._context,
                parent=self._parent,
                resource=tracing.provider.resource,
                attributes=details.attributes,
                kind=self._kind,
                status=_UNSET if exc_type is None else Status(StatusCode.ERROR, exc_type.__name__),
                start_time=self._start,
                end_time=end,
                instrumentation_scope=SCOPE,
                links=details.links,
            )
        )
