"""OpenTelemetry traces of the commands a worker handles (on the process's ``Tracing``).

One trace per command: a consumer span ``process <CommandType>`` continuing the
command's W3C trace context (the CloudEvents ``traceparent`` extension, else the Kafka
record's header), with ``handle`` (validation, plan) and ``run`` (the plan's work; for an
execution: the program's spans and ``record``). The program's spans are made from the
execution's trace after it ran (``runtime.trace``), so nothing is added inside the DSPy
call, with OpenInference's attributes (``consumers.span_attributes``). A result carries
the context on: its ``traceparent`` names the command's span (tracing off: it is the
command's own).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import AttributeValue

from dspyops import tracing
from dspyops.consumers.completions import lm_spans, price_lm_spans
from dspyops.consumers.records import Incoming
from dspyops.consumers.span_attributes import program_span_attributes
from dspyops.events.envelope import TRACEPARENT, TRACESTATE, Envelope
from dspyops.runtime.run_trace import NO_TRACE, NoTrace, RunTrace
from dspyops.tracing import OFF, SCOPE, Tracing, tracing_configured

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)

__all__ = [
    "Telemetry",
    "current_traceparent",
    "traceparent_of",
    "tracestate_of",
    "tracing_configured",
]


class Telemetry(Tracing):
    """The worker's spans; ``Telemetry()`` is off."""

    def command(self, record: Incoming, envelope: Envelope) -> AbstractContextManager[object]:
        """The command's consumer span, current inside the block."""
        if self.provider is None:
            return OFF
        command_type = envelope.short_type
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.message.id": envelope.id,
            "dspyops.command.type": command_type,
            "dspyops.correlation_id": envelope.correlation_id,
        }
        if envelope.subject:
            attributes["dspyops.subject"] = envelope.subject
        return self.continue_trace(
            traceparent_of(envelope, record),
            f"process {command_type}",
            SpanKind.CONSUMER,
            attributes,
            tracestate_of(envelope, record),
        )

    def traceparent(self, command: Envelope, record: Incoming | None = None) -> str | None:
        """What a result of ``command`` carries: the current span, else the command's."""
        return current_traceparent(command, record)

    # --- an optimization's or evaluation's DSPy calls -----------------------------------

    def run(
        self,
        redact: Callable[[str], str] | None = None,
        prices: tuple[float, float] | None = None,
    ) -> NoTrace:
        """What records a run's phases and their DSPy calls as spans under the current
        span (the command's ``run``), when that one is sampled (``runtime.run_trace``);
        its LM spans priced at ``prices`` (USD per prompt and completion token), if known."""
        if self.provider is None:
            return NO_TRACE
        parent = tracing.current_span_context()
        if parent is None or not parent.trace_flags.sampled:
            return NO_TRACE

        def emit(tree: dict[str, Any], started_ns: int) -> None:
            price_lm_spans(lm_spans(tree), prices)
            self.program(tree, started_ns)

        return RunTrace(stage=self.stage, emit=emit, redact=redact)

    # --- an execution's program ---------------------------------------------------------

    def program(self, tree: dict[str, Any] | None, started_ns: int) -> None:
        """The execution's trace (``runtime.trace`` JSON) as finished spans under the
        current one, when that one is sampled."""
        if self.provider is None or tree is None:
            return
        parent = tracing.current_span_context()
        if parent is None or not parent.trace_flags.sampled:
            return
        finished: list[ReadableSpan] = []
        self._spans(tree, parent, started_ns, finished)
        self.emit(*finished)

    def _spans(
        self,
        span: dict[str, Any],
        parent: SpanContext,
        started_ns: int,
        finished: list[ReadableSpan],
    ) -> None:
        if "start_ms" not in span:  # several top-level spans, gathered without timings
            for child in span.get("children", []):
                self._spans(child, parent, started_ns, finished)
            return
        start = started_ns + int(span["start_ms"] * 1_000_000)
        context = tracing.span_context(parent[0], random.getrandbits(64) or 1, _SAMPLED, parent[4])
        error = span.get("error")
        finished.append(
            ReadableSpan(
                f"{span['kind']} {span['name']}",
                context=context,
                parent=parent,
                resource=self.resource(),
                attributes=program_span_attributes(span),
                status=(
                    Status(StatusCode.ERROR, f"{error['type']}: {error['message']}")
                    if error
                    else _UNSET
                ),
                start_time=start,
                end_time=start + int((span.get("latency_ms") or 0) * 1_000_000),
                instrumentation_scope=SCOPE,
            )
        )
        for child in span.get("children", []):
            self._spans(child, context, started_ns, finished)


def current_traceparent(command: Envelope, record: Incoming | None = None) -> str | None:
    """The current span's W3C context (tracing on, inside a command's spans), else the
    command's own: what every message the command causes carries on."""
    return tracing.current_traceparent() or traceparent_of(command, record)


def tracestate_of(envelope: Envelope, record: Incoming | None = None) -> str | None:
    """The W3C `tracestate` a command came with (its envelope's, else its record's), which
    every message it causes carries on unchanged."""
    value = (envelope.model_extra or {}).get(TRACESTATE)
    if not (isinstance(value, str) and value):
        value = record.tracestate if record is not None else None
    return _w3c_tracestate(value)


def traceparent_of(envelope: Envelope, record: Incoming | None = None) -> str | None:
    """The W3C trace context a command came with: its envelope's, else its record's."""
    extra = envelope.model_extra or {}
    value = extra.get(TRACEPARENT)
    if not (isinstance(value, str) and value):
        value = record.traceparent if record is not None else None
    return _w3c_traceparent(value)


# What a producer sends is carried on by every result and stored with every event of
# the command: only a well-formed W3C context is (OpenTelemetry's own parsers decide).
# Anything else, a megabyte of header among it, is dropped as if none had come.
# W3C's limit for a tracestate a vendor passes on (32 members of up to 256 characters
# would be more; 512 is what the recommendation says to propagate at least).
MAX_TRACESTATE_CHARS = 512


def _w3c_traceparent(value: str | None) -> str | None:
    if not value or len(value) > 55:  # version 00 is exactly 55 characters
        return None
    return value if tracing.parse_traceparent(value) is not None else None


def _w3c_tracestate(value: str | None) -> str | None:
    if not value or len(value) > MAX_TRACESTATE_CHARS:
        return None
    state = TraceState.from_header([value])
    return state.to_header() or None
