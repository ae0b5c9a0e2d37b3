"""The trace of a command goes on with its events: a real worker (tracing on, OTLP/HTTP to
a loopback receiver) stores each event with the context of the command that recorded it,
its relay publishes them on the events topic with that context (envelope extension and
record header), and a real projector's batch spans link to those commands' traces.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.projector_process import position, start_projector, stop, wait_until
from tests.support.worker_process import WorkerProcess

PARENT_ID = "b7ad6b7169203331"


def trace_id(n: int) -> str:
    return f"{n:02x}f7651916cd43dd8448eb211c8031{n:02x}"


async def test_events_carry_their_commands_trace_to_the_events_topic_and_the_projector(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    program_id = f"qa-{unique}"
    register = command(
        "RegisterProgram",
        {"program_id": program_id, "name": "qa", "signature": "q: str -> a: str", "lm": "offline"},
    )
    # Executions sent at once (recorded together when one group commit takes them), each
    # with a trace of its own.
    executions = [
        command("ExecuteProgram", {"program_id": program_id, "inputs": {"q": f"question {n}"}})
        for n in range(4)
    ]
    traced = {
        envelope.id: (trace_id(n + 1), envelope.model_copy(update={"traceparent": parent(n + 1)}))
        for n, envelope in enumerate([register, *executions])
    }
    untraced = command("ExecuteProgram", {"program_id": program_id, "inputs": {"q": "plain"}})
    with OtlpReceiver() as otlp:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with WorkerProcess({**env, **otel}, tmp_path / "worker.log") as worker:
            async with TopicReader(bootstrap, topics.results) as results:
                await send_commands(bootstrap, topics, [traced[register.id][1]])
                await results.results_for([register.id], timeout_s=120)
                sent = [envelope for _, envelope in list(traced.values())[1:]] + [untraced]
                await send_commands(bootstrap, topics, sent)
                got = await results.results_for([e.id for e in sent], timeout_s=120)
            assert all(len(r) == 1 for r in got.values()), (got, worker.log())
            events = await _events(bootstrap, topics.events, {*traced, untraced.id})
        # The worker's `process` span of each command: what its events must name.
        process_span = {
            command_id: _root(otlp.wait_for(trace, lambda spans: len(_roots(spans)) == 1))
            for command_id, (trace, _) in traced.items()
        }
        for command_id, sent_events in events.items():
            for value, headers in sent_events:
                if command_id == untraced.id:  # no context sent, tracing on: its own trace
                    assert value["traceparent"] == headers["traceparent"]
                    assert value["traceparent"].split("-")[1] not in {t for t, _ in traced.values()}
                    continue
                expected = f"00-{traced[command_id][0]}-{process_span[command_id].span_id}-01"
                assert value["traceparent"] == expected, value
                assert headers["traceparent"] == expected
                assert "traceparent" not in value["data"]
        # Each command stored a handled record and its aggregate's events.
        assert all(len(events[c]) >= 2 for c in traced), {c: len(e) for c, e in events.items()}

        rs = f"read_{unique}"
        projector_env = {
            **os.environ,
            **env,
            **otel,
            "DSPYOPS_READ_MODEL_SCHEMA": rs,
            "DSPYOPS_PROJECTION_POLL_INTERVAL_S": "0.02",
        }
        head = max(int(v["position"]) for sent_events in events.values() for v, _ in sent_events)
        projector = start_projector(projector_env)
        try:
            wait_until(lambda: position(database_url, rs) >= head, 60, "the projector")
            wanted = {(trace, process_span[c].span_id) for c, (trace, _) in traced.items()}

            def linked() -> set[tuple[str, str]]:
                return {link for span in otlp.named("project batch") for link in span.links}

            wait_until(lambda: wanted <= linked(), 30, f"links to {wanted}, got {linked()}")
        finally:
            stop(projector)
    (batch, *_) = otlp.named("project batch")
    assert batch.service == "dspyops-projector"
    # A trace of its own, linked to the commands' traces, not a child in one of them.
    assert batch.trace_id not in {trace for trace, _ in traced.values()}
    assert batch.parent_span_id == ""


def parent(n: int) -> str:
    return f"00-{trace_id(n)}-{PARENT_ID}-01"


def _roots(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_span_id == PARENT_ID]


def _root(spans: list[ReceivedSpan]) -> ReceivedSpan:
    (root,) = _roots(spans)
    assert root.name.startswith("process "), root
    return root


async def _events(
    bootstrap: str, topic: str, command_ids: set[str]
) -> dict[str, list[tuple[dict[str, Any], dict[str, str]]]]:
    """The events topic's messages caused by `command_ids`, with their record headers,
    once each command's HandledCommand event has come."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: dict[str, list[tuple[dict[str, Any], dict[str, str]]]] = {}
    handled: set[str] = set()
    try:
        for _ in range(600):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    value = json.loads(record.value or b"{}")
                    cause = value.get("causationid")
                    if cause not in command_ids:
                        continue
                    headers = {k: v.decode() for k, v in record.headers or ()}
                    found.setdefault(cause, []).append((value, headers))
                    if value["type"].endswith("HandledCommand.Handled"):
                        handled.add(cause)
            if handled == command_ids:
                return found
    finally:
        await consumer.stop()
    raise AssertionError(f"events of {command_ids - handled} never came: {sorted(found)}")
