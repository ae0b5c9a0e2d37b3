"""dspyops.otlp: spans written straight to OTLP/protobuf bytes are the request the SDK's
encoder builds, field for field, and the exporter sends them over OTLP/HTTP."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from dspyops.otlp import OtlpSpanExporter, encode_request
from dspyops.tracing import Tracing
from tests.support.otlp_receiver import OtlpReceiver

RESOURCE = Resource.create({"service.name": "dspyops-worker", "host.cores": 2})
SCOPE = InstrumentationScope("dspyops")


def context(span_id: int, *, remote: bool = False, state: TraceState | None = None) -> SpanContext:
    return SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        span_id,
        is_remote=remote,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=state,
    )


def span(name: str = "run", **fields: Any) -> ReadableSpan:
    fields.setdefault("context", context(0xB7AD6B7169203331))
    fields.setdefault("resource", RESOURCE)
    fields.setdefault("instrumentation_scope", SCOPE)
    fields.setdefault("start_time", 1_700_000_000_000_000_000)
    fields.setdefault("end_time", 1_700_000_000_004_400_000)
    return ReadableSpan(name, **fields)


def sdk_bytes(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString(deterministic=True)


def ours(spans: list[ReadableSpan]) -> bytes:
    """Our encoding, parsed and written again by protobuf: the same bytes as the SDK's
    when the two requests hold the same fields (presence included)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(spans))
    return request.SerializeToString(deterministic=True)


def test_a_worker_command_trace_is_encoded_as_the_sdk_encodes_it() -> None:
    root = span(
        "process ExecuteProgram",
        parent=context(0x1111, remote=True, state=TraceState([("vendor", "x=1")])),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.kafka.offset": 7,
            "dspyops.subject": "",
            "llm.cost.total": 0.00012,
            "input.value": '{"question": "é ✓ 数"}',
        },
    )
    child = span("lm openai/x", context=context(0x2222), parent=root.context)
    failed = span(
        "tool search",
        context=context(0x3333),
        parent=child.context,
        status=Status(StatusCode.ERROR, "ValueError: no"),
    )
    ok = span("handle", context=context(0x4444), parent=root.context, status=Status(StatusCode.OK))
    assert ours([root, child, failed, ok]) == sdk_bytes([root, child, failed, ok])


def test_every_field_and_attribute_type_the_sdk_writes() -> None:
    attributes = BoundedAttributes(
        maxlen=8,
        attributes={
            "s": "text",
            "empty": "",
            "t": True,
            "f": False,
            "zero": 0,
            "negative": -5,
            "big": 2**63 - 1,
            "float": -1.5,
        },
        immutable=False,
    )
    attributes["dropped"] = "over the limit"  # counted as dropped
    full = span(
        "",
        kind=SpanKind.SERVER,
        attributes=attributes,
        events=[
            Event("retry", {"attempt": 2, "strings": ("a", "b")}, timestamp=5),
            Event("", None, timestamp=0),
        ],
        links=[Link(context(0x5555, remote=True), {"ints": [1, 2], "floats": (0.5,)})],
        start_time=None,
        end_time=None,
    )
    no_scope = span("bare", instrumentation_scope=None, resource=Resource({}, "https://s"))
    scoped = span(
        "scoped",
        instrumentation_scope=InstrumentationScope("lib", "1.2", "https://x", {"k": "v"}),
    )
    spans = [full, no_scope, scoped, span("again")]
    assert ours(spans) == sdk_bytes(spans)


def test_spans_of_several_traces_with_their_own_states_are_encoded_as_in_the_sdk() -> None:
    """The trace id written last is remembered: spans of other traces in between, and
    a span's own trace state, are written as the SDK writes them."""
    other_trace = SpanContext(0x1234, 0x77, False, TraceFlags(TraceFlags.SAMPLED))
    stated = SpanContext(
        0x1234, 0x78, False, TraceFlags(TraceFlags.SAMPLED), TraceState([("v", "1"), ("w", "2")])
    )
    spans = [
        span("a"),
        span("b", context=other_trace),
        span("c", context=context(0x10)),
        span("d", context=stated, parent=other_trace),
    ]
    assert ours(spans) == sdk_bytes(spans)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 4095, 4096, 20_000])
def test_lengths_on_either_side_of_a_varints_size_are_written_as_the_sdk_writes_them(
    size: int,
) -> None:
    """Lengths up to 4 KiB come from a table, longer ones are computed: both as the SDK."""
    text = "x" * size
    spans = [span(text, attributes={"input.value": text, "short": "s"}), span("after")]
    assert ours(spans) == sdk_bytes(spans)


def test_spans_of_alternating_resources_and_scopes_are_grouped_as_in_the_sdk() -> None:
    other = Resource.create({"service.name": "dspyops-api"})
    library = InstrumentationScope("lib", "1.2")
    spans = [
        span("a"),
        span("b", resource=other),
        span("c"),
        span("d", instrumentation_scope=library),
        span("e", resource=other),
        span("f"),
    ]
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(spans))
    assert [
        [s.name for s in scoped.spans] for r in request.resource_spans for scoped in r.scope_spans
    ] == [
        ["a", "c", "f"],
        ["d"],
        ["b", "e"],
    ]
    assert ours(spans) == sdk_bytes(spans)


def test_spans_of_equal_resources_share_one_resource_spans_as_in_the_sdk() -> None:
    twin = Resource.create({"service.name": "dspyops-worker", "host.cores": 2})
    other = Resource.create({"service.name": "dspyops-api"})
    spans = [span("a"), span("b", resource=twin), span("c", resource=other), span("d")]
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(spans))
    assert [len(r.scope_spans[0].spans) for r in request.resource_spans] == [3, 1]
    assert ours(spans) == sdk_bytes(spans)


def test_an_attribute_the_sdk_cannot_encode_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd = span(attributes={"kept": 1, "too big": 2**64, "odd type": object()})
    with caplog.at_level(logging.ERROR, logger="dspyops.otlp"):
        assert ours([odd]) == sdk_bytes([span(attributes={"kept": 1})])
    assert "too big" in caplog.text
    assert "odd type" in caplog.text


def test_a_string_attribute_that_cannot_be_encoded_is_left_out_not_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A str value or key that is not valid UTF-8 (a lone surrogate), or a key that is
    no str, loses that attribute, as in the SDK, not every span of the batch."""
    odd = span(attributes={"kept": "v", "bad value": "x\ud800y", "bad \udc80key": "v", 1: "v"})
    spans = [odd, span("other", context=context(0x99))]
    expected = [span(attributes={"kept": "v"}), spans[1]]
    with caplog.at_level(logging.ERROR, logger="dspyops.otlp"):
        assert ours(spans) == sdk_bytes(spans) == sdk_bytes(expected)
    assert "bad value" in caplog.text


scalars = (
    st.text(max_size=20)
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=10)
)
values = scalars | st.lists(scalars, max_size=3) | st.none()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=30), values, max_size=6), st.integers(1, 2**64 - 1))
def test_any_attributes_are_encoded_as_the_sdk_encodes_them(
    attributes: dict[str, Any], span_id: int
) -> None:
    one = span("x", context=context(span_id), attributes=attributes)
    assert ours([one]) == sdk_bytes([one])
    assert ours([one]) == sdk_bytes([one])  # again, from what was remembered


def test_a_remembered_attribute_is_told_apart_by_its_values_type() -> None:
    for value in (True, 1, "1", 0, False, "", 2**40):
        one = span(attributes={"k": value})
        assert ours([one]) == sdk_bytes([one]), value


def test_the_exporter_sends_the_encoding_over_otlp_http() -> None:
    spans = [span("a"), span("b", context=context(0x99), parent=context(0xB7AD6B7169203331))]
    with OtlpReceiver() as otlp:
        exporter = OtlpSpanExporter(endpoint=f"{otlp.endpoint}/v1/traces")
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export(spans) == SpanExportResult.FAILURE
    assert otlp.requests == 1
    assert {(s.name, s.parent_span_id) for s in otlp.spans} == {
        ("a", ""),
        ("b", "b7ad6b7169203331"),
    }
    assert otlp.spans[0].service == "dspyops-worker"


def test_tracing_on_by_the_environment_exports_with_this_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    tracing = Tracing.from_environment("dspyops-worker")
    (processor,) = tracing._processors
    assert isinstance(processor, BatchSpanProcessor)
    assert isinstance(processor._batch_processor._exporter, OtlpSpanExporter)
    processor.shutdown()
