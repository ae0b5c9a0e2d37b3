"""A span per API request when tracing is on: named after the route template, continuing
the caller's W3C traceparent, with the status it answered."""

from __future__ import annotations

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dspyops.api.main import create_app
from dspyops.settings import get_settings
from dspyops.tracing import Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
# Nothing listens there: the routes answer 503 without a database, which is enough here.
NOWHERE = "postgresql://postgres@127.0.0.1:1/none"


def test_a_request_is_a_server_span_under_the_callers_span() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter), TracerProvider())
    settings = get_settings().model_copy(
        update={
            "database_url": NOWHERE,
            "kafka_bootstrap_servers": "127.0.0.1:1",
            "api_db_wait_s": 0.2,
        }
    )
    with TestClient(create_app(settings, tracing=tracing)) as client:
        # No database behind it: 503 after the pool's wait, a status like any other here.
        answered = client.get(
            "/programs/qa/versions/0", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        )
        client.get("/health")  # no traceparent: a trace of its own
        client.get("/no/such/route")

    (span, other, unmatched) = exporter.get_finished_spans()
    assert answered.status_code == 503
    assert span.name == "GET /programs/{program_id}/versions/{number}"
    assert span.kind == SpanKind.SERVER
    assert span.context.trace_id == int(TRACE_ID, 16)
    assert span.parent is not None
    assert span.parent.span_id == int(PARENT_ID, 16)
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/programs/{program_id}/versions/{number}"
    assert span.attributes["http.response.status_code"] == answered.status_code
    assert other.name == "GET /health"
    assert other.parent is None
    assert other.context.trace_id != int(TRACE_ID, 16)
    # A path no route matched names no path: raw paths would be unbounded names.
    assert unmatched.name == "GET"


def test_tracing_off_makes_no_span_and_still_answers() -> None:
    settings = get_settings().model_copy(
        update={"database_url": NOWHERE, "kafka_bootstrap_servers": "127.0.0.1:1"}
    )
    with TestClient(create_app(settings, tracing=Tracing())) as client:
        assert client.get("/openapi.json").status_code == 200
