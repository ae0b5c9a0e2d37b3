"""Prometheus /metrics from a real worker and a real projector, on ports of their own."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.projector_process import projector_env, start_projector
from tests.support.worker_process import WorkerProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(
    port: int, wanted: str, timeout_s: float = 30
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples at /metrics once `wanted` is among them."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            if any(name == wanted for name, _ in samples):
                return samples
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted} at :{port}/metrics after {timeout_s}s")
        time.sleep(0.2)


async def test_worker_and_projector_serve_their_metrics(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    worker_port, projector_port = free_port(), free_port()
    program_id = f"m-{unique}"
    register = command(
        "RegisterProgram",
        {"program_id": program_id, "name": "m", "signature": "question: str -> answer: str"},
    )
    execute = command("ExecuteProgram", {"program_id": program_id, "inputs": {"question": "?"}})
    worker_env = {**env, "DSPYOPS_WORKER_METRICS_PORT": str(worker_port)}
    with WorkerProcess(worker_env, tmp_path / "worker.log"):
        async with TopicReader(bootstrap, topics.results) as results:
            for envelope in (register, execute):
                await send_commands(bootstrap, topics, [envelope])
                (result,) = (await results.results_for([envelope.id], timeout_s=120))[envelope.id]
        worker = scrape(worker_port, "dspyops_consumer_lag_messages")

    assert result["type"] == "dspyops.result.ExecutionSucceeded", result
    succeeded = (("program_id", program_id), ("status", "succeeded"))
    assert worker[("dspyops_executions_total", succeeded)] == 1
    # The default profile here is the offline one: it costs nothing, and says so.
    assert worker[("dspyops_cost_usd_total", (("program_id", program_id),))] == 0
    assert worker[("dspyops_executions_in_flight", ())] == 0
    handled = (("command_type", "RegisterProgram"), ("result", "ProgramRegistered"))
    assert worker[("dspyops_commands_total", handled)] == 1
    assert ("process_resident_memory_bytes", ()) in worker
    # Every command was done: no lag on the partitions it reports (it reports some).
    lags = {
        labels: v for (name, labels), v in worker.items() if name == "dspyops_consumer_lag_messages"
    }
    assert lags
    assert set(lags.values()) == {0}
    assert {dict(labels)["topic"] for labels in lags} <= set(topics.commands)

    otlp = OtlpReceiver().__enter__()
    projector = start_projector(
        {
            **projector_env(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"], f"read_{unique}"),
            "DSPYOPS_PROJECTOR_METRICS_PORT": str(projector_port),
            # And a span per batch applied, to a loopback OTLP receiver.
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            samples = scrape(projector_port, "dspyops_projector_events_total")
            if samples[("dspyops_projector_events_total", ())] >= 3:  # program, execution
                break
            assert time.monotonic() < deadline, samples
            await asyncio.sleep(0.2)
        assert samples[("dspyops_projector_lag_events", ())] == 0
        assert samples[("dspyops_projector_batch_duration_seconds_count", ())] >= 1
        # The worker's metrics are the worker's: not on the projector's endpoint.
        assert not any(name.startswith("dspyops_executions") for name, _ in samples)
        deadline = time.monotonic() + 30
        while not (batches := [s for s in otlp.spans if s.name == "project batch"]):
            assert time.monotonic() < deadline, "no projector span"
            await asyncio.sleep(0.2)
        assert sum(int(s.attributes["dspyops.events"]) for s in batches) >= 3
        assert {s.service for s in batches} == {"dspyops-projector"}
    finally:
        projector.terminate()
        projector.wait(timeout=30)
        otlp.__exit__()
