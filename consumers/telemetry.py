"""OpenTelemetry traces of the commands a worker handles; off unless configured.

Configured only by the standard variables. Tracing is on when ``OTEL_TRACES_EXPORTER``
is ``otlp`` or ``console``, or when it is unset and an OTLP endpoint is
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``); the SDK
itself reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``
(and ``_ARG``), ``OTEL_BSP_*`` and the exporter's headers and timeout. OTLP goes over
HTTP with protobuf. Off, no span object is made: each hook is one attribute test.

One trace per command: a consumer span ``process <CommandType>`` continuing the
command's W3C trace context (the CloudEvents ``traceparent`` extension, else the Kafka
record's header), with ``handle`` (validation, plan) and ``run`` (the plan's work; for an
execution: the program's spans and ``record``). The program's spans are made from the
execution's trace after it ran (``runtime.trace``), so nothing is added inside the DSPy
call, with OpenInference's attributes (``consumers.span_attributes``). Every span is made
by hand (ids, the provider's sampler, a finished ``ReadableSpan`` to the processor): the
SDK's live spans, with their locks and per-span checks, cost several times more. A
result carries the context on: its ``traceparent`` names the command's span (tracing
off: it is the command's own).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from dspyops.consumers.records import Incoming
from dspyops.consumers.span_attributes import program_span_attributes
from dspyops.events.envelope import TRACEPARENT, Envelope

_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = InstrumentationScope("dspyops")
# Spans waiting for export; the SDK's default (2,048) drops spans under a burst of
# executions (about ten spans each). OTEL_BSP_MAX_QUEUE_SIZE still decides when set.
MAX_QUEUE = 16_384


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


class Telemetry:
    """The worker's spans; ``Telemetry()`` is off."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._processors: list[SpanProcessor] = []

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, provider: TracerProvider) -> Telemetry:
        """On, exporting through ``exporter`` in batches (tests give their own)."""
        queue = None if "OTEL_BSP_MAX_QUEUE_SIZE" in os.environ else MAX_QUEUE
        processor = BatchSpanProcessor(exporter, max_queue_size=queue)
        provider.add_span_processor(processor)
        telemetry = cls(provider)
        telemetry._processors.append(processor)
        return telemetry

    @classmethod
    def with_processor(cls, processor: SpanProcessor, provider: TracerProvider) -> Telemetry:
        provider.add_span_processor(processor)
        telemetry = cls(provider)
        telemetry._processors.append(processor)
        return telemetry

    @classmethod
    def from_environment(cls, service_name: str) -> Telemetry:
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
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.with_exporter(OTLPSpanExporter(), provider)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    # --- the command's spans ----------------------------------------------------------

    @contextmanager
    def command(self, record: Incoming, envelope: Envelope) -> Iterator[None]:
        """The command's consumer span, current inside the block."""
        if self.provider is None:
            yield
            return
        name = f"process {envelope.short_type}"
        carrier = {TRACEPARENT: traceparent_of(envelope, record) or ""}
        parent_context = _PROPAGATOR.extract(carrier)
        parent = trace.get_current_span(parent_context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else random.getrandbits(128) or 1
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.message.id": envelope.id,
            "dspyops.command.type": envelope.short_type,
            "dspyops.correlation_id": envelope.correlation_id,
            **({"dspyops.subject": envelope.subject} if envelope.subject else {}),
        }
        sampling = self.provider.sampler.should_sample(
            parent_context, trace_id, name, SpanKind.CONSUMER, attributes
        )
        sampled = sampling.decision.is_sampled()
        with self._span(
            name,
            trace_id,
            parent if parent.is_valid else None,
            SpanKind.CONSUMER,
            {**attributes, **dict(sampling.attributes or {})},
            sampled=sampled,
            trace_state=sampling.trace_state,
        ):
            yield

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A child of the current span (``handle``, ``run``, ``record``)."""
        parent = trace.get_current_span().get_span_context()
        if self.provider is None or not parent.is_valid or not parent.trace_flags.sampled:
            yield
            return
        with self._span(name, parent.trace_id, parent, SpanKind.INTERNAL, {}, sampled=True):
            yield

    @contextmanager
    def _span(
        self,
        name: str,
        trace_id: int,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        *,
        sampled: bool,
        trace_state: Any = None,
    ) -> Iterator[None]:
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        span_context = SpanContext(trace_id, random.getrandbits(64) or 1, False, flags, trace_state)
        # Current (as a non-recording span) so nested stages and traceparent see it.
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
        start = time.time_ns()
        status = Status(StatusCode.UNSET)
        try:
            yield
        except BaseException as exc:
            status = Status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            otel_context.detach(token)
            if sampled:
                self._emit(
                    ReadableSpan(
                        name,
                        context=span_context,
                        parent=parent,
                        resource=self._resource(),
                        attributes=attributes,
                        kind=kind,
                        status=status,
                        start_time=start,
                        end_time=time.time_ns(),
                        instrumentation_scope=_SCOPE,
                    )
                )

    def _resource(self) -> Resource:
        assert self.provider is not None
        return self.provider.resource

    def _emit(self, *spans: ReadableSpan) -> None:
        for processor in self._processors:
            for span in spans:
                processor.on_end(span)

    def traceparent(self, command: Envelope, record: Incoming | None = None) -> str | None:
        """What a result of ``command`` carries: the current span, else the command's."""
        return current_traceparent(command, record)

    # --- an execution's program ---------------------------------------------------------

    def program(self, tree: dict[str, Any] | None, started_ns: int) -> None:
        """The execution's trace (``runtime.trace`` JSON) as finished spans under the
        current one, when that one is sampled."""
        if self.provider is None or tree is None:
            return
        parent = trace.get_current_span().get_span_context()
        if not parent.is_valid or not parent.trace_flags.sampled:
            return
        finished: list[ReadableSpan] = []
        self._spans(tree, parent, started_ns, finished)
        self._emit(*finished)

    def _spans(
        self,
        span: dict[str, Any],
        parent: SpanContext,
        started_ns: int,
        finished: list[ReadableSpan],
    ) -> None:
        assert self.provider is not None
        if "start_ms" not in span:  # several top-level spans, gathered without timings
            for child in span.get("children", []):
                self._spans(child, parent, started_ns, finished)
            return
        start = started_ns + int(span["start_ms"] * 1_000_000)
        context = SpanContext(
            parent.trace_id,
            random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        error = span.get("error")
        finished.append(
            ReadableSpan(
                f"{span['kind']} {span['name']}",
                context=context,
                parent=parent,
                resource=self._resource(),
                attributes=program_span_attributes(span),
                status=(
                    Status(StatusCode.ERROR, f"{error['type']}: {error['message']}")
                    if error
                    else Status(StatusCode.UNSET)
                ),
                start_time=start,
                end_time=start + int((span.get("latency_ms") or 0) * 1_000_000),
                instrumentation_scope=_SCOPE,
            )
        )
        for child in span.get("children", []):
            self._spans(child, context, started_ns, finished)


def current_traceparent(command: Envelope, record: Incoming | None = None) -> str | None:
    """The current span's W3C context (tracing on, inside a command's spans), else the
    command's own: what every message the command causes carries on."""
    if trace.get_current_span().get_span_context().is_valid:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(TRACEPARENT)
    return traceparent_of(command, record)


def traceparent_of(envelope: Envelope, record: Incoming | None = None) -> str | None:
    """The W3C trace context a command came with: its envelope's, else its record's."""
    extra = envelope.model_extra or {}
    value = extra.get(TRACEPARENT)
    if isinstance(value, str) and value:
        return value
    return record.traceparent if record is not None else None
