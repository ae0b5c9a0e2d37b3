"""dspyops.tracing's hand-made spans: current inside their block, finished when it ends,
an error's type as their status, nothing when dropped, unsampled or off."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)

from dspyops import tracing as tracing_module
from dspyops.tracing import (
    PROPAGATOR,
    Tracing,
    current_span_context,
    current_traceparent,
    fixed_decisions,
    parse_traceparent,
    span_context,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def traced(provider: TracerProvider | None = None) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing.with_processor(SimpleSpanProcessor(exporter), provider or TracerProvider()), (
        exporter
    )


def test_a_stage_is_a_child_of_the_current_span_and_both_end_with_their_block() -> None:
    tracing, exporter = traced()
    with tracing.continue_trace(TRACEPARENT, "process X", SpanKind.CONSUMER, {"a": 1}):
        root_traceparent = current_traceparent()
        with tracing.stage("handle"):
            stage_traceparent = current_traceparent()
        assert len(exporter.get_finished_spans()) == 1
    assert current_traceparent() is None
    stage, root = exporter.get_finished_spans()
    assert root.name == "process X"
    assert root.kind == SpanKind.CONSUMER
    assert root.attributes == {"a": 1}
    assert root.parent is not None
    assert root.parent.span_id == 0x00F067AA0BA902B7
    assert root.parent.is_remote
    assert stage.parent == root.context
    assert root.context is not None
    assert stage.context is not None
    assert root_traceparent == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{root.context.span_id:016x}-01"
    assert (
        stage_traceparent == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{stage.context.span_id:016x}-01"
    )
    assert root.start_time is not None
    assert stage.start_time is not None
    assert stage.end_time is not None
    assert root.end_time is not None
    assert root.start_time <= stage.start_time <= stage.end_time <= root.end_time
    assert root.status.status_code == StatusCode.UNSET


def test_a_span_whose_block_raises_has_the_errors_type_as_its_status() -> None:
    tracing, exporter = traced()
    with (
        pytest.raises(KeyError),
        tracing.continue_trace(None, "root", SpanKind.SERVER, {}),
        tracing.stage("run"),
    ):
        raise KeyError("x")
    assert current_traceparent() is None
    for span in exporter.get_finished_spans():
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "KeyError"


def test_a_dropped_span_is_not_exported_but_its_children_are() -> None:
    tracing, exporter = traced()
    with tracing.continue_trace(None, "poll", SpanKind.INTERNAL, {}) as details:
        with tracing.stage("nothing"):
            pass
        details.dropped = True
    assert [span.name for span in exporter.get_finished_spans()] == ["nothing"]


def test_unsampled_or_off_nothing_is_exported_and_the_context_is_passed_on() -> None:
    tracing, exporter = traced(TracerProvider(sampler=ALWAYS_OFF))
    with tracing.continue_trace(TRACEPARENT, "root", SpanKind.CONSUMER, {}):
        with tracing.stage("handle"):
            pass
        assert current_traceparent() is not None  # the span is current, not sampled
        assert current_traceparent() != TRACEPARENT
    assert exporter.get_finished_spans() == ()
    off = Tracing()
    with off.continue_trace(TRACEPARENT, "root", SpanKind.CONSUMER, {"a": 1}) as details:
        assert details.attributes == {"a": 1}
        with off.stage("handle"):
            assert current_traceparent() is None


W3C_VALUES = [
    TRACEPARENT,
    f"00-{TRACE_ID}-00f067aa0ba902b7-00",  # not sampled
    f" 00-{TRACE_ID}-00f067aa0ba902b7-01\t",  # surrounding blanks are allowed
    f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # version 00 has no more fields
    f"01-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # a later version may
    f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is invalid
    f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero span id
    f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # hex is lower case
    "00-abc-def-01",
    "",
    "x" * 600,
]


@pytest.mark.parametrize("traceparent", W3C_VALUES)
@pytest.mark.parametrize("tracestate", [None, "vendor=a,other=b", "not a state"])
def test_a_context_is_read_as_opentelemetrys_propagator_reads_it(
    traceparent: str, tracestate: str | None
) -> None:
    carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
    expected = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    for _ in range(2):  # read, then remembered
        parsed = parse_traceparent(traceparent, tracestate)
        if expected.is_valid:
            assert parsed == expected
            assert parsed.trace_state == expected.trace_state
            assert parsed.is_remote
        else:
            assert parsed is None


def test_a_written_context_read_back_is_what_the_propagator_reads() -> None:
    tracing, _ = traced()
    with tracing.continue_trace(TRACEPARENT, "process X", SpanKind.CONSUMER, {}):
        written = current_traceparent()
    assert written is not None
    remembered = parse_traceparent(written)
    extracted = trace.get_current_span(PROPAGATOR.extract({"traceparent": written}))
    assert remembered == extracted.get_span_context()
    assert remembered is not None
    assert remembered.is_remote
    assert remembered.trace_state == extracted.get_span_context().trace_state


def test_contexts_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing_module, "_PARSED_MAX", 10)
    tracing_module._PARSED.clear()
    for n in range(25):
        parse_traceparent(f"00-{TRACE_ID}-{n + 1:016x}-01")
    assert 0 < len(tracing_module._PARSED) <= 10
    assert parse_traceparent(f"00-{TRACE_ID}-{1:016x}-01") is not None


@pytest.mark.parametrize(
    ("traceparent", "tracestate"),
    [
        ("x" * 100_000, None),  # a header the propagator turns down
        (TRACEPARENT, "vendor=a," * 1000),  # over its tracestate limit: ignored
        (TRACEPARENT, "vendor=a,other=" + "b" * 600),  # read as far as it goes
    ],
)
def test_a_long_header_is_read_but_not_remembered(traceparent: str, tracestate: str | None) -> None:
    """An API request's headers are as long as its client makes them: a cache of them
    would keep up to _PARSED_MAX of whatever size."""
    carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
    expected = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    parsed = parse_traceparent(traceparent, tracestate)
    assert parsed == (expected if expected.is_valid else None)
    assert (traceparent, tracestate) not in tracing_module._PARSED


class _Recording(Sampler):
    """Samples everything, keeping the parent context it was given."""

    def __init__(self) -> None:
        self.contexts: list[Context | None] = []

    def should_sample(
        self, parent_context: Context | None, *args: Any, **kwargs: Any
    ) -> SamplingResult:
        self.contexts.append(parent_context)
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "recording"


@pytest.mark.parametrize("traceparent", [TRACEPARENT, None, "not a context"])
def test_the_sampler_is_given_what_the_propagator_extracts(traceparent: str | None) -> None:
    """Only the remote parent, as ``PROPAGATOR.extract(carrier)`` gives it: not whatever
    else is current where the span begins (here a value another library set)."""
    sampler = _Recording()
    tracing, _ = traced(TracerProvider(sampler=sampler))
    carrier = {"traceparent": traceparent or "", "tracestate": "vendor=a"}
    expected = PROPAGATOR.extract(carrier)
    token = otel_context.attach(otel_context.set_value("elsewhere", 1))
    try:
        with tracing.continue_trace(traceparent, "x", SpanKind.CONSUMER, {}, "vendor=a"):
            pass
    finally:
        otel_context.detach(token)
    (given,) = sampler.contexts
    assert given is not None
    assert set(given) == set(expected)
    span_context = trace.get_current_span(given).get_span_context()
    assert span_context == trace.get_current_span(expected).get_span_context()


@pytest.mark.parametrize("state", [None, TraceState([("vendor", "a")])])
@pytest.mark.parametrize("flags", [TraceFlags(TraceFlags.SAMPLED), TraceFlags(TraceFlags.DEFAULT)])
def test_a_span_context_made_without_checks_is_the_one_opentelemetry_makes(
    state: TraceState | None, flags: TraceFlags
) -> None:
    made = span_context(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, flags, state)
    expected = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, flags, state
    )
    assert type(made) is SpanContext
    assert tuple(made) == tuple(expected)
    assert made.is_valid
    assert made.trace_state == expected.trace_state


SAMPLERS = [
    ALWAYS_ON,
    ALWAYS_OFF,
    DEFAULT_ON,
    DEFAULT_OFF,
    ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON),
    ParentBasedTraceIdRatio(0.5),
    TraceIdRatioBased(0.5),
    _Recording(),
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s.get_description())
@pytest.mark.parametrize("traceparent", [None, TRACEPARENT, f"00-{TRACE_ID}-00f067aa0ba902b7-00"])
def test_a_decision_known_without_asking_the_sampler_is_the_samplers(
    sampler: Sampler, traceparent: str | None
) -> None:
    """`fixed_decisions` answers for the samplers whose answer does not depend on the
    span, as they would; the others are asked (ratio-based ones for a first span)."""
    parent = parse_traceparent(traceparent)
    fixed = fixed_decisions(sampler)
    key = None if parent is None else parent.trace_flags.sampled
    parent_context = (
        Context() if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
    )
    for trace_id in (1, 2**127, 2**128 - 1):
        answer = sampler.should_sample(parent_context, trace_id, "x", SpanKind.CONSUMER, {})
        if key in fixed:
            assert fixed[key] == answer.decision.is_sampled()
    if isinstance(sampler, TraceIdRatioBased) or (
        isinstance(sampler, ParentBasedTraceIdRatio) and parent is None
    ):
        assert key not in fixed  # depends on the trace id
    elif not isinstance(sampler, _Recording):
        assert key in fixed  # the SDK's static answers, behind a parent-based one or not
    tracing, exporter = traced(TracerProvider(sampler=sampler))
    with tracing.continue_trace(traceparent, "x", SpanKind.CONSUMER, {}) as span:
        pass
    exported = exporter.get_finished_spans()
    if key in fixed:
        assert len(exported) == int(fixed[key])
    if exported:
        assert exported[0] is span
        if parent is not None:
            assert span.context.trace_state == parent.trace_state


def test_a_finished_span_is_a_whole_readable_span_for_any_exporter() -> None:
    """A span is finished in place (its fields set without ReadableSpan.__init__): the
    SDK's console exporter, which reads every field, writes what a ReadableSpan made
    by the SDK's constructor from the same fields writes."""
    tracing, exporter = traced(TracerProvider(resource=Resource.create({"service.name": "t"})))
    with tracing.continue_trace(TRACEPARENT, "process X", SpanKind.CONSUMER, {"a": 1}) as root:
        root.links = [Link(parse_traceparent(TRACEPARENT))]  # type: ignore[arg-type]
        root.name = "process Y"
    (span,) = exporter.get_finished_spans()
    assert span is root
    rebuilt = ReadableSpan(
        span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
    assert span.to_json() == rebuilt.to_json()
    assert '"name": "process Y"' in span.to_json()
    ConsoleSpanExporter(out=io.StringIO()).export([span])


def test_opentelemetrys_current_span_is_the_unit_of_works_first_one() -> None:
    """Stages are current for dspyops (`current_span_context`); for OpenTelemetry (other
    libraries' instrumentation) the first span of the unit of work is."""
    tracing, _ = traced()
    assert not trace.get_current_span().get_span_context().is_valid
    with tracing.continue_trace(None, "root", SpanKind.CONSUMER, {}) as root:
        with tracing.stage("run") as stage:
            assert trace.get_current_span().get_span_context() == root.context
            assert current_span_context() == stage.context  # type: ignore[attr-defined]
        assert current_span_context() == root.context
    assert current_span_context() is None
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_batch_processor_gets_the_sampled_spans_through_its_queue() -> None:
    """With the SDK's BatchSpanProcessor (the worker's), spans go to its queue directly:
    all of them are exported, none of an unsampled trace."""
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_exporter(exporter, TracerProvider())
    unsampled = f"00-{TRACE_ID}-00f067aa0ba902b7-00"
    for traceparent in (TRACEPARENT, unsampled, None):
        with (
            tracing.continue_trace(traceparent, "root", SpanKind.CONSUMER, {}),
            tracing.stage("handle"),
        ):
            pass
    (processor,) = tracing._processors
    assert processor.force_flush()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["handle", "root", "handle", "root"]
    assert {s.context.trace_id for s in spans[:2]} == {int(TRACE_ID, 16)}
    processor.shutdown()


def test_a_span_ended_in_another_context_still_ends_and_the_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An async generator holding spans across a ``yield``, closed by another task, ends
    them in that task's context: the context variable's token cannot be reset there. As
    OpenTelemetry's ``detach``, that is logged, not raised; the spans are exported."""
    tracing, exporter = traced()

    async def spans() -> Any:
        with tracing.continue_trace(None, "root", SpanKind.CONSUMER, {}), tracing.stage("inner"):
            yield 1

    async def main() -> None:
        generator = spans()
        await anext(generator)
        await asyncio.create_task(generator.aclose())

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert [span.name for span in exporter.get_finished_spans()] == ["inner", "root"]
    assert "Failed to reset the current span inner" in caplog.text
    assert current_span_context() is None
