"""OpenTelemetry traces of the commands a worker handles; off unless configured.

Configured only by the standard variables. Tracing is on when ``OTEL_TRACES_EXPORTER``
is ``otlp`` or ``console``, or when it is unset and an OTLP endpoint is
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``); the SDK
itself reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``
(and ``_ARG``), ``OTEL_BSP_*`` and the exporter's headers and timeout. OTLP goes over
HTTP with protobuf. Off, no span object is made: each hook is one attribute test.

One trace per command: a consumer span ``process <CommandType>`` that continues the
command's W3C trace context (the CloudEvents ``traceparent`` extension, else the Kafka
record's ``traceparent`` header), with ``handle`` (validation and plan) and, for work a
plan describes, ``run``. An execution's ``run`` holds the program's spans and
``record``. The program's spans are made from the execution's own trace after it ran
(``runtime.trace``, with its timings), so tracing adds nothing inside the DSPy call;
they carry OpenInference's attributes (``openinference.span.kind`` LLM, CHAIN, TOOL,
RETRIEVER, AGENT; ``llm.model_name``; ``llm.token_count.*``; ``input.value``...), which
Phoenix, Langfuse and MLflow read. The result of the command carries the context on:
its ``traceparent`` names the command's span (or, tracing off, is the command's own).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from dspyops.consumers.records import Incoming
from dspyops.events.envelope import TRACEPARENT, Envelope

# Our span kinds -> OpenInference's.
SPAN_KINDS = {
    "lm": OpenInferenceSpanKindValues.LLM.value,
    "tool": OpenInferenceSpanKindValues.TOOL.value,
    "retrieval": OpenInferenceSpanKindValues.RETRIEVER.value,
}
_PROPAGATOR = TraceContextTextMapPropagator()


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

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self.tracer = tracer

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
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            # Imported only when used: the exporter pulls in protobuf and requests.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider.get_tracer("dspyops"))

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    # --- the command's spans ----------------------------------------------------------

    @contextmanager
    def command(self, record: Incoming, envelope: Envelope) -> Iterator[None]:
        """The command's consumer span, current inside the block."""
        if self.tracer is None:
            yield
            return
        parent = _PROPAGATOR.extract({TRACEPARENT: traceparent_of(envelope, record) or ""})
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
        with self.tracer.start_as_current_span(
            f"process {envelope.short_type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            yield

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A child of the current span (``handle``, ``run``, ``record``)."""
        if self.tracer is None:
            yield
            return
        with self.tracer.start_as_current_span(name):
            yield

    def traceparent(self, command: Envelope, record: Incoming | None = None) -> str | None:
        """What a result of ``command`` carries: the current span, else the command's."""
        if self.tracer is not None and trace.get_current_span().get_span_context().is_valid:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            return carrier.get(TRACEPARENT)
        return traceparent_of(command, record)

    # --- an execution's program ---------------------------------------------------------

    def program(self, tree: dict[str, Any] | None, started_ns: int) -> None:
        """The execution's trace (``runtime.trace`` JSON) as spans under the current one."""
        if self.tracer is None or tree is None:
            return
        self._span(tree, None, started_ns)

    def _span(self, span: dict[str, Any], parent: Context | None, started_ns: int) -> None:
        assert self.tracer is not None
        if "start_ms" not in span:  # several top-level spans, gathered without timings
            for child in span.get("children", []):
                self._span(child, parent, started_ns)
            return
        start = started_ns + int(span["start_ms"] * 1_000_000)
        end = start + int((span.get("latency_ms") or 0) * 1_000_000)
        otel = self.tracer.start_span(
            f"{span['kind']} {span['name']}",
            context=parent,
            start_time=start,
            attributes=_attributes(span),
        )
        error = span.get("error")
        if error:
            otel.set_status(Status(StatusCode.ERROR, f"{error['type']}: {error['message']}"))
        inner = trace.set_span_in_context(otel, parent)
        for child in span.get("children", []):
            self._span(child, inner, started_ns)
        otel.end(end_time=end)


def traceparent_of(envelope: Envelope, record: Incoming | None = None) -> str | None:
    """The W3C trace context a command came with: its envelope's, else its record's."""
    extra = envelope.model_extra or {}
    value = extra.get(TRACEPARENT)
    if isinstance(value, str) and value:
        return value
    return record.traceparent if record is not None else None


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    kind = span["kind"]
    if kind in SPAN_KINDS:
        oi_kind = SPAN_KINDS[kind]
    elif span.get("type") == "ReAct":
        oi_kind = OpenInferenceSpanKindValues.AGENT.value
    else:
        oi_kind = OpenInferenceSpanKindValues.CHAIN.value
    attributes: dict[str, Any] = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: oi_kind,
        "dspyops.span.kind": kind,
        "dspyops.span.type": str(span.get("type", "")),
    }
    for field, value_key, mime_key in (
        ("inputs", SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE),
        ("outputs", SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE),
    ):
        if span.get(field) is not None:
            attributes[value_key] = json.dumps(span[field], ensure_ascii=False)
            attributes[mime_key] = "application/json"
    usage = span.get("usage") or {}
    if kind == "lm":
        attributes[SpanAttributes.LLM_MODEL_NAME] = str(span.get("model", span["name"]))
        for key, attribute in (
            ("prompt_tokens", SpanAttributes.LLM_TOKEN_COUNT_PROMPT),
            ("completion_tokens", SpanAttributes.LLM_TOKEN_COUNT_COMPLETION),
            ("total_tokens", SpanAttributes.LLM_TOKEN_COUNT_TOTAL),
        ):
            if key in usage:
                attributes[attribute] = usage[key]
    if kind == "tool":
        attributes[SpanAttributes.TOOL_NAME] = span["name"]
    if kind == "retrieval":
        attributes["dspyops.corpus.id"] = str(span.get("corpus"))
        if span.get("corpus_version") is not None:
            attributes["dspyops.corpus.version"] = span["corpus_version"]
        for n, doc_id in enumerate(span.get("document_ids") or []):
            attributes[f"retrieval.documents.{n}.document.id"] = str(doc_id)
    return attributes
