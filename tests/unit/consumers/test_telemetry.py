"""Traces of the commands a worker handles (consumers.telemetry), with an in-memory event store
and the SDK's in-memory exporter: one tree per command, continuing the command's context."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dspyops import metrics
from dspyops.aggregates.app import DspyOps, ExecutionPlan, in_memory_env
from dspyops.cli.dev_commands import where_traces_go
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.consumers.telemetry import Telemetry, tracing_configured
from dspyops.events.codec import encode
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.offline import output_fields
from dspyops.runtime.profiles import LMProfile, ProfileRegistry
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.run_trace import NO_TRACE, RunTrace
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

TOPICS = Topics("t.")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SIGNATURE = "question: str -> answer: str"


class Profiles(ProfileRegistry):
    def __init__(self, lm: dspy.BaseLM) -> None:
        super().__init__({"default": LMProfile(name="default", model="openai/test-model")})
        self._lm = lm

    def build_lm(self, name: str) -> dspy.BaseLM:
        self.get(name)
        return self._lm


def reply(request: Any) -> str:
    values = {"answer": "Paris", "query": "capital", "reasoning": "r"}
    return chat_reply(**{name: values.get(name, "x") for name in output_fields(request)})


def worker(telemetry: Telemetry) -> Processor:
    app = DspyOps(in_memory_env())
    lm = ScriptedLM(reply, usage=(10, 5))
    jobs = ExecutionJobs(app, Profiles(lm), ModuleCache(), redactor=Redactor(), telemetry=telemetry)
    return Processor(app, TOPICS, {ExecutionPlan: jobs.run}, telemetry=telemetry)


def traced() -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry.with_processor(SimpleSpanProcessor(exporter), TracerProvider())
    return telemetry, exporter


async def send(
    processor: Processor, topic: str, envelope: Envelope, header: str | None = None
) -> Envelope:
    record = Incoming(topic, 0, 7, b"k", encode(envelope), traceparent=header)
    (out,) = await processor.process(record)
    return out.envelope


async def execute(processor: Processor, **extensions: Any) -> Envelope:
    register = command_envelope(
        "RegisterProgram",
        {"program_id": "q", "name": "q", "signature": SIGNATURE, "module": "ChainOfThought"},
    )
    await send(processor, TOPICS.programs, register)
    command = command_envelope(
        "ExecuteProgram", {"program_id": "q", "inputs": {"question": "capital of France?"}}
    )
    command = command.model_copy(update=extensions)
    return await send(processor, TOPICS.executions, command)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_an_execution_is_one_trace_continuing_the_commands_context() -> None:
    telemetry, exporter = traced()
    processor = worker(telemetry)

    result = await execute(processor, traceparent=TRACEPARENT)

    assert result.type == "dspyops.result.ExecutionSucceeded"
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]
    named = by_name(tuple(spans))
    root = named["process ExecuteProgram"]
    assert root.parent is not None
    assert root.parent.span_id == int(PARENT_ID, 16)
    assert root.attributes is not None
    assert root.attributes["messaging.destination.name"] == TOPICS.executions
    assert root.attributes["messaging.kafka.offset"] == 7
    ids = {span.context.span_id: span for span in spans}
    # Every span but the root hangs from a span of this trace.
    assert all(s.parent is not None and s.parent.span_id in ids for s in spans if s is not root)

    def parent_name(span: ReadableSpan) -> str:
        assert span.parent is not None
        return ids[span.parent.span_id].name

    assert parent_name(named["handle"]) == root.name
    assert parent_name(named["run"]) == root.name
    assert parent_name(named["program program"]) == "run"
    assert parent_name(named["record"]) == "run"
    assert parent_name(named["predictor predict"]) == "program program"
    lm = named["lm scripted"]  # the LM the profile built
    assert parent_name(lm) == "predictor predict"
    assert lm.attributes is not None
    assert lm.attributes["openinference.span.kind"] == "LLM"
    assert lm.attributes["llm.token_count.total"] == 15
    program_attributes = named["program program"].attributes
    assert program_attributes is not None
    assert program_attributes["openinference.span.kind"] == "CHAIN"
    # The program's spans keep the execution's own timings, inside the run.
    program, run = named["program program"], named["run"]
    assert run.start_time is not None
    assert program.start_time is not None
    assert run.end_time is not None
    assert program.end_time is not None
    assert run.start_time <= program.start_time <= program.end_time <= run.end_time
    # The result carries the context on: the command's span.
    assert (result.model_extra or {})["traceparent"] == (
        f"00-{TRACE_ID}-{root.context.span_id:016x}-01"
    )


async def test_the_kafka_header_is_the_context_when_the_envelope_has_none() -> None:
    telemetry, exporter = traced()
    processor = worker(telemetry)
    command = command_envelope(
        "RegisterProgram", {"program_id": "h", "name": "h", "signature": SIGNATURE}
    )

    await send(processor, TOPICS.programs, command, header=TRACEPARENT)

    root = by_name(exporter.get_finished_spans())["process RegisterProgram"]
    assert root.context.trace_id == int(TRACE_ID, 16)
    assert root.parent is not None
    assert root.parent.span_id == int(PARENT_ID, 16)


async def test_an_unsampled_context_records_no_spans() -> None:
    telemetry, exporter = traced()

    await execute(worker(telemetry), traceparent=f"00-{TRACE_ID}-{PARENT_ID}-00")

    assert [
        s.name for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)
    ] == []


async def test_tracing_off_passes_the_commands_context_on_unchanged() -> None:
    result = await execute(worker(Telemetry()), traceparent=TRACEPARENT)

    assert result.type == "dspyops.result.ExecutionSucceeded"
    assert (result.model_extra or {})["traceparent"] == TRACEPARENT


async def test_a_command_without_context_gets_a_result_without_one_when_off() -> None:
    result = await execute(worker(Telemetry()))

    assert "traceparent" not in (result.model_extra or {})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "OTLP"}, "otlp"),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask(
    environ: dict[str, str], expected: str | None
) -> None:
    assert tracing_configured(environ) == expected


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert not Telemetry.from_environment("dspyops-worker").enabled


def test_dev_says_where_traces_go() -> None:
    assert where_traces_go({}).startswith("off")
    assert where_traces_go({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "OTLP/HTTP to http://c:4318/v1/traces"
    )
    traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/t", "OTEL_TRACES_EXPORTER": "otlp"}
    assert where_traces_go(traces) == "OTLP/HTTP to http://c:9/t"
    assert "log" in where_traces_go({"OTEL_TRACES_EXPORTER": "console"})


async def test_an_execution_counts_in_the_workers_metrics() -> None:
    def sample(name: str, **labels: str) -> float:
        return metrics.WORKER.get_sample_value(name, labels) or 0.0

    before = {
        "ok": sample("dspyops_executions_total", program_id="q", status="succeeded"),
        "prompt": sample("dspyops_lm_tokens_total", program_id="q", kind="prompt"),
        "unpriced": sample("dspyops_unpriced_executions_total", program_id="q"),
        "lm": sample("dspyops_lm_call_duration_seconds_count", model="scripted"),
        "handled": sample(
            "dspyops_commands_total", command_type="ExecuteProgram", result="ExecutionSucceeded"
        ),
    }

    await execute(worker(Telemetry()))

    assert (
        sample("dspyops_executions_total", program_id="q", status="succeeded") == before["ok"] + 1
    )
    assert sample("dspyops_lm_tokens_total", program_id="q", kind="prompt") == before["prompt"] + 10
    # The scripted model has no price: counted as unpriced, not as $0.
    assert sample("dspyops_unpriced_executions_total", program_id="q") == before["unpriced"] + 1
    assert sample("dspyops_lm_call_duration_seconds_count", model="scripted") == before["lm"] + 1
    handled = sample(
        "dspyops_commands_total", command_type="ExecuteProgram", result="ExecutionSucceeded"
    )
    assert handled == before["handled"] + 1
    assert sample("dspyops_executions_in_flight") == 0


TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


async def test_tracestate_goes_with_the_trace_into_spans_and_results() -> None:
    telemetry, exporter = traced()

    result = await execute(worker(telemetry), traceparent=TRACEPARENT, tracestate=TRACESTATE)

    # Passed on unchanged: dspyops adds no entry of its own.
    assert (result.model_extra or {})["tracestate"] == TRACESTATE
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]
    root = by_name(tuple(spans))["process ExecuteProgram"]
    assert root.context.trace_state.to_header() == TRACESTATE
    # Every span of the trace has it, as the SDK gives each child its parent's.
    assert len(spans) >= 5
    assert {s.context.trace_state.to_header() for s in spans} == {TRACESTATE}


async def test_tracestate_from_the_record_header_when_tracing_is_off() -> None:
    processor = worker(Telemetry())
    await execute(processor)
    command = command_envelope("ExecuteProgram", {"program_id": "q", "inputs": {"question": "?"}})
    record = Incoming(
        TOPICS.executions,
        0,
        8,
        b"k",
        encode(command),
        traceparent=TRACEPARENT,
        tracestate=TRACESTATE,
    )
    (out,) = await processor.process(record)
    assert (out.envelope.model_extra or {})["traceparent"] == TRACEPARENT
    assert (out.envelope.model_extra or {})["tracestate"] == TRACESTATE


def test_a_run_records_its_dspy_calls_only_inside_a_sampled_span() -> None:
    telemetry, _ = traced()
    assert Telemetry().run() is NO_TRACE  # tracing off
    assert telemetry.run() is NO_TRACE  # no span current
    unsampled = f"00-{TRACE_ID}-{PARENT_ID}-00"
    with telemetry.continue_trace(unsampled, "process OptimizeProgram", SpanKind.CONSUMER, {}):
        assert telemetry.run() is NO_TRACE
    with telemetry.continue_trace(TRACEPARENT, "process OptimizeProgram", SpanKind.CONSUMER, {}):
        assert isinstance(telemetry.run(), RunTrace)


def test_a_runs_lm_spans_carry_their_cost_at_the_runs_prices() -> None:
    telemetry, exporter = traced()
    call = {
        "kind": "program",
        "name": "program",
        "type": "Predict",
        "start_ms": 0.0,
        "latency_ms": 5.0,
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
        "children": [
            {
                "kind": "lm",
                "name": "openai/test-model",
                "type": "LM",
                "model": "openai/test-model",
                "start_ms": 1.0,
                "latency_ms": 3.0,
                "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
                "children": [],
            }
        ],
    }
    with telemetry.continue_trace(TRACEPARENT, "process EvaluateProgram", SpanKind.CONSUMER, {}):
        run = telemetry.run(prices=(2e-6, 8e-6))
        with run.phase("score"):
            assert isinstance(run, RunTrace)
            run.emit(call, 1_000_000_000)
    spans = by_name(tuple(exporter.get_finished_spans()))
    assert (spans["lm openai/test-model"].attributes or {})["llm.cost.total"] == pytest.approx(
        (30 * 2.0 + 7 * 8.0) / 1e6
    )
    assert spans["program program"].parent == spans["score"].context
    assert (spans["score"].attributes or {})["dspyops.spans.kept"] == 0
