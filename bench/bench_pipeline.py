"""Executions through dspyops against direct DSPy calls, measured in one run on this machine.

    .venv/bin/python -m bench.bench_pipeline [--executions 3000] [--otel] [--exactly-once]

Needs the local stack (`dspyops infra up`). Prints:
  (a) direct in-process `module.acall` with a zero-latency stub LM (executions/s),
  (b) end to end through Kafka and a worker process with the same stub LM
      (produce command -> result consumed): executions/s, ratio b/a, p50/p99 latency at
      half of the peak rate,
  (c) the same with a stub LM that takes 200 ms per call: throughput and achieved
      concurrency (Little's law, and the LM's own peak calls in flight),
  and a profile of the worker's per-record path (no Kafka) showing where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench.stub_worker import StubProfiles, reply
from dspyops.aggregates.app import CommandContext, ExecutionPlan, handle
from dspyops.bootstrap import open_store
from dspyops.client.keys import record_key, subject_of
from dspyops.client.producers import durable_producer
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.consumers.topic_admin import Replication, ensure_topics
from dspyops.events.codec import encode
from dspyops.events.commands import RegisterProgram
from dspyops.events.envelope import command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.executor import configure_dspy_for_workers
from dspyops.runtime.modules import build_module
from dspyops.runtime.redaction import Redactor
from dspyops.settings import Settings, get_settings
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.scripted_lm import ScriptedLM

SIGNATURE = "question: str, context: str -> answer: str, confidence: float[0, 1]"
REPO = Path(__file__).resolve().parents[1]


def _inputs(n: int) -> dict[str, str]:
    return {"question": f"What is the capital of France? ({n})", "context": "Europe"}


async def direct_rate(count: int, concurrency: int = 200) -> float:
    """(a): the same program and stub LM called in this process, `concurrency` at a time."""
    module = build_module("Predict", dspy_signature(compile_signature(SIGNATURE)))
    lm = ScriptedLM(reply)
    import dspy

    sem = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with sem:
            with dspy.context(lm=lm):
                await module.acall(**_inputs(n))

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return count / (time.perf_counter() - began)


class StubStack:
    """A worker process plus a producer and a results consumer in this process.

    `setup` is sent on the programs topic first, as (command type, data) pairs; the
    program is `program` (RegisterProgram data without its id) or the one-signature QA
    program, executed with `inputs(n)`.
    """

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        delay_ms: float,
        py_spy: str | None = None,
        workers: int = 1,
        *,
        setup: list[tuple[str, dict[str, Any]]] | None = None,
        program: dict[str, Any] | None = None,
        inputs: Callable[[int], dict[str, Any]] = _inputs,
    ) -> None:
        self.setup = setup or []
        self.program = program or {"name": "bench", "signature": SIGNATURE}
        self.inputs = inputs
        self.py_spy = py_spy
        self.workers_wanted = workers
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.env = env
        self.delay_ms = delay_ms
        self.stats = Path(tempfile.mkstemp(suffix=".json")[1])
        self.sent: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.program_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.cpu_ms_per_execution = 0.0

    async def __aenter__(self) -> StubStack:
        command = [
            sys.executable,
            "-m",
            "bench.stub_worker",
            "--delay-ms",
            str(self.delay_ms),
            "--stats",
            str(self.stats),
        ]
        if self.py_spy:
            # Samples every thread of the worker (event loop, store and DSPy threads).
            py_spy = str(Path(sys.executable).parent / "py-spy")
            # --gil: samples the thread holding the GIL, i.e. where the CPU goes. Blocking
            # (the default): --nonblocking lost a quarter of the samples here, unevenly.
            spy = [py_spy, "record", "--gil", "-f", "raw", "-o", self.py_spy]
            command = [*spy, "--", *command[:5]]
        # More workers join the same consumer group: scale-out, partitions shared.
        self.workers = [
            subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
                command if n == 0 else command[command.index(sys.executable) :],
                cwd=REPO,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
            for n in range(self.workers_wanted)
        ]
        security = self.settings.kafka_security
        # Bursts: batches of 2 ms. Paced commands go one by one, as DspyopsClient sends
        # them (no linger): latency is the pipeline's, not this producer's batching.
        self.producer = durable_producer(self.settings.bootstrap_servers, security, linger_ms=2)
        self.paced_producer = durable_producer(self.settings.bootstrap_servers, security)
        self.consumer = AIOKafkaConsumer(
            self.topics.results,
            bootstrap_servers=self.settings.bootstrap_servers,
            auto_offset_reset="latest",
            group_id=None,
            isolation_level="read_committed",  # as any consumer of exactly-once results
            **security.aiokafka_kwargs(),
        )
        await self.producer.start()
        await self.paced_producer.start()
        await self.consumer.start()
        await self.consumer.seek_to_end()
        self.reader = asyncio.create_task(self._read())
        for kind, data in self.setup:
            await self._setup(kind, data)
        await self._setup("RegisterProgram", {"program_id": self.program_id, **self.program})
        # Warm up: the first executions build the module and fill caches.
        await self.run_burst(50)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.producer.stop()
        await self.paced_producer.stop()
        await self.consumer.stop()
        # SIGINT lets py-spy write its profile; the worker stops on it too.
        for worker in self.workers:
            worker.send_signal(signal.SIGINT)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()

    async def _setup(self, kind: str, data: dict[str, Any]) -> None:
        envelope = command_envelope(kind, data, subject=subject_of(data))
        await self._send(self.topics.programs, envelope)
        await self.wait([envelope.id], timeout_s=120)

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    cause = json.loads(r.value)["causationid"]
                    self.received.setdefault(cause, now)

    async def _send(self, topic: str, envelope: Any, *, paced: bool = False) -> None:
        self.sent[envelope.id] = time.perf_counter()
        producer = self.paced_producer if paced else self.producer
        # Keyed as the contract says (executions by their own id), as DspyopsClient does.
        await producer.send(topic, encode(envelope), key=record_key(envelope))

    def _execution(self, n: int) -> Any:
        data = {"program_id": self.program_id, "inputs": self.inputs(n)}
        return command_envelope("ExecuteProgram", data, subject=self.program_id)

    async def wait(self, ids: list[str], timeout_s: float = 300) -> None:
        deadline = time.perf_counter() + timeout_s
        while any(i not in self.received for i in ids):
            if time.perf_counter() > deadline:
                missing = sum(i not in self.received for i in ids)
                raise TimeoutError(f"{missing} of {len(ids)} results missing")
            await asyncio.sleep(0.01)

    async def run_burst(self, count: int) -> float:
        """Sends `count` executions at once; returns executions/s until the last result.
        ``cpu_ms_per_execution`` is then the worker processes' CPU time (all threads) per
        execution: less disturbed than the rate by other work on the machine."""
        commands = [self._execution(n) for n in range(count)]
        cpu_before = self._workers_cpu_s()
        began = time.perf_counter()
        for c in commands:
            await self._send(self.topics.executions, c)
        await self.producer.flush()
        await self.wait([c.id for c in commands])
        elapsed = time.perf_counter() - began
        self.cpu_ms_per_execution = (self._workers_cpu_s() - cpu_before) / count * 1000
        return count / elapsed

    def _workers_cpu_s(self) -> float:
        """User + system CPU seconds of the worker processes (under py-spy: its child)."""
        total = 0.0
        for worker in self.workers:
            process = psutil.Process(worker.pid)
            for one in [process, *process.children()]:
                times = one.cpu_times()
                total += times.user + times.system
        return total

    async def run_paced(self, rate: float, seconds: float) -> list[float]:
        """Sends at a fixed rate; returns each command's end-to-end latency in ms."""
        count = max(1, int(rate * seconds))
        commands = [self._execution(n) for n in range(count)]
        began = time.perf_counter()
        for i, c in enumerate(commands):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send(self.topics.executions, c, paced=True)
        await self.wait([c.id for c in commands])
        return [(self.received[c.id] - self.sent[c.id]) * 1000 for c in commands]

    def peak_in_flight(self) -> int:
        try:
            return int(json.loads(self.stats.read_text())["peak_in_flight"])
        except (ValueError, KeyError, OSError):
            return -1


async def profile_processing(settings: Settings, count: int) -> str:
    """cProfile of Processor.process for `count` execution records: no Kafka, real PostgreSQL."""
    store = open_store(settings.effective_database_url, settings.event_store_schema)
    program_id = f"prof-{uuid.uuid4().hex[:8]}"
    handle(
        store,
        RegisterProgram(program_id=program_id, name="p", signature=SIGNATURE),
        CommandContext(command_id=f"reg-{program_id}", correlation_id="p"),
    )
    topics = Topics(settings.topic_prefix)
    jobs = ExecutionJobs(store, StubProfiles(ScriptedLM(reply)), ModuleCache(), redactor=Redactor())
    processor = Processor(store, topics, {ExecutionPlan: jobs.run})
    records = [
        Incoming(
            topics.executions,
            0,
            n,
            None,
            encode(
                command_envelope(
                    "ExecuteProgram",
                    {"program_id": program_id, "inputs": _inputs(n)},
                    subject=program_id,
                )
            ),
        )
        for n in range(count)
    ]

    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for record in records:
        await processor.process(record)
    profiler.disable()
    elapsed = time.perf_counter() - began
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(
        r"(dspyops|aggregates|consumers|runtime|signatures|eventsourcing|dspy|psycopg)", 25
    )
    summary = (
        f"sequential per-record path: {count / elapsed:.0f} records/s "
        f"({elapsed / count * 1000:.2f} ms each, profiler on)\n"
    )
    return summary + "\n".join(out.getvalue().splitlines()[:60])


async def tracing_cost(
    settings: Settings,
    env: dict[str, str],
    executions: int,
    workers: int,
    py_spy: str | None = None,
    rounds: int = 16,
    **stack: Any,
) -> None:
    """(b) with tracing off and on: two workers started together, each with topics and
    an event store of its own, one traced (OTLP/HTTP to a loopback receiver, every
    execution sampled), given bursts of ``executions`` in turns, off-on then on-off
    (``rounds`` pairs); the median of the pairs' ratios.

    This machine's speed drifts by more than tracing costs over a minute (the worker's
    CPU per execution moved by 15 % between two untraced turns half a minute apart):
    pairs of bursts seconds apart, with no worker to start between them, in both
    orders, cancel most of it. Not both at once: given the same bursts together, the
    worker that got ahead stayed ahead, batching more per poll, and two untraced
    workers differed by 5 to 9 %. ``py_spy``: both workers are recorded, to
    ``<py_spy>.off`` and ``<py_spy>.on``."""
    env_on, settings_on = await bench_stack()
    try:
        with OtlpReceiver(decode=False) as otlp:
            traced_env = {
                **env_on,
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                "OTEL_TRACES_SAMPLER": "always_on",
            }
            spy = {on: f"{py_spy}.{'on' if on else 'off'}" if py_spy else None for on in (0, 1)}
            async with (
                StubStack(settings, env, 0, spy[0], workers, **stack) as off,
                StubStack(settings_on, traced_env, 0, spy[1], workers, **stack) as on,
            ):
                ratios, cpu_ratios = [], []
                for turn in range(rounds):
                    rate, cpu = {}, {}
                    for pipe in (off, on) if turn % 2 == 0 else (on, off):
                        rate[pipe] = await pipe.run_burst(executions)
                        cpu[pipe] = pipe.cpu_ms_per_execution
                    ratios.append(rate[on] / rate[off])
                    cpu_ratios.append(cpu[off] / cpu[on])
                    print(
                        f"    off {rate[off]:5.0f}/s, on {rate[on]:5.0f}/s: ratio "
                        f"{ratios[-1]:.2f}; worker CPU per execution off {cpu[off]:.2f} ms, "
                        f"on {cpu[on]:.2f} ms",
                        flush=True,
                    )
            received = f"{otlp.requests} OTLP requests, {otlp.bytes / 1e6:.1f} MB received"
    finally:
        await clean_up(settings_on)
    print(
        f"(c) tracing on / off: {statistics.median(ratios):.2f}  (median of {rounds} pairs; "
        f"target >= 0.9); {received}"
    )
    print(f"    worker CPU per execution, off / on: {statistics.median(cpu_ratios):.2f}")


async def exactly_once_cost(
    settings: Settings, env: dict[str, str], executions: int, workers: int
) -> None:
    """(b) with exactly-once results off and on (DSPYOPS_RESULTS_EXACTLY_ONCE: the outbox
    and Kafka transactions), two turns each, alternating; the best of each, and the p50
    latency of each at one rate both sustain."""
    best: dict[bool, float] = {}
    p50: dict[bool, float] = {}
    for turn in range(4):
        on = turn % 2 == 1
        turn_env = {**env, "DSPYOPS_RESULTS_EXACTLY_ONCE": "true" if on else "false"}
        async with StubStack(settings, turn_env, 0, None, workers) as pipe:
            rate = await pipe.run_burst(executions)
            latencies = await pipe.run_paced(50, seconds=4) if turn >= 2 else []
        best[on] = max(rate, best.get(on, 0.0))
        note = ""
        if latencies:
            p50[on] = statistics.median(latencies)
            note = f", p50 {p50[on]:.1f} ms at 50/s"
        print(f"    exactly-once {'on ' if on else 'off'}: {rate:6.0f} executions/s{note}")
    print(f"(b) exactly-once on / off: {best[True] / best[False]:.2f} (throughput, best of two)")
    print(f"    p50 at 50/s: off {p50[False]:.1f} ms, on {p50[True]:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--slow-executions", type=int, default=3000, help="for (c); 0 skips (c)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for (b)")
    parser.add_argument(
        "--py-spy", metavar="FILE", help="record the zero-latency worker with py-spy into FILE"
    )
    parser.add_argument(
        "--otel",
        action="store_true",
        help="only (b), with OpenTelemetry tracing off and on in turns, and their ratio",
    )
    parser.add_argument(
        "--rounds", type=int, default=16, help="with --otel: pairs of bursts (default 16)"
    )
    parser.add_argument(
        "--exactly-once",
        action="store_true",
        help="only (b), with exactly-once results off and on in turns, and their ratio",
    )
    args = parser.parse_args()
    env, settings = await bench_stack()
    if args.exactly_once:
        try:
            await exactly_once_cost(settings, env, args.executions, args.workers)
        finally:
            await clean_up(settings)
        return
    if args.otel:
        try:
            await tracing_cost(
                settings, env, args.executions, args.workers, args.py_spy, args.rounds
            )
        finally:
            await clean_up(settings)
        for kind in ("off", "on") if args.py_spy else ():
            print(f"\nwhere the worker's time goes, tracing {kind} (py-spy, first turn):")
            print(summarize_py_spy(f"{args.py_spy}.{kind}"))
        return

    try:
        await pipeline(args, env, settings)
    finally:  # a failed run leaves no topics or schema behind
        await clean_up(settings)


async def pipeline(args: argparse.Namespace, env: dict[str, str], settings: Settings) -> None:
    """(a), (b) and (c) and the profiles, as the module's docstring says."""
    direct = await direct_rate(args.executions)
    print(f"(a) direct DSPy acall, stub LM 0 ms:        {direct:8.0f} executions/s")

    async with StubStack(settings, env, 0, py_spy=args.py_spy, workers=args.workers) as pipe:
        peak = await pipe.run_burst(args.executions)
        print(
            f"(b) end to end via Kafka, stub LM 0 ms:     {peak:8.0f} executions/s "
            f"({args.workers} worker process(es))"
        )
        print(
            f"    worker CPU per execution:                {pipe.cpu_ms_per_execution:8.2f} ms "
            "(all threads; less disturbed by the machine's other work than the rate)"
        )
        print(f"    ratio b/a:                               {peak / direct:8.2f}  (target >= 0.5)")
        latencies = await pipe.run_paced(peak / 2, seconds=5)
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(
            f"    at half of peak ({peak / 2:.0f}/s): p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            "(target p50 <= 25 ms)"
        )

    if args.slow_executions > 0:  # 0: skip (c)
        async with StubStack(settings, env, delay_ms=200) as pipe:
            rate = await pipe.run_burst(args.slow_executions)
            littles = rate * 0.2
            print(f"(c) end to end, stub LM 200 ms:             {rate:8.0f} executions/s")
            print(
                f"    concurrency by Little's law: {littles:.0f}; LM peak calls in flight: "
                f"{pipe.peak_in_flight()} (target >= 200, throughput >= 0.8 x in-flight / 0.2 s)"
            )

    if args.py_spy and os.path.exists(args.py_spy):  # noqa: ASYNC240 (once, at the end)
        print("\nwhere the worker's time goes (py-spy, zero-latency run):")
        print(summarize_py_spy(args.py_spy))
    print("\nwhere the time goes (worker path without Kafka, cumulative):")
    print(await profile_processing(settings, 300))


async def bench_stack() -> tuple[dict[str, str], Settings]:
    """Topics and an event store schema of the run's own (removed by `clean_up`), on the
    local stack; the worker's environment and this process's settings for them."""
    base = get_settings()
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": base.bootstrap_servers,
        "DATABASE_URL": base.effective_database_url,
        "DSPYOPS_TOPIC_PREFIX": f"bench{suffix}.",
        "DSPYOPS_EVENT_STORE_SCHEMA": f"bench_{suffix}",
    }
    # A copy of the environment's settings (Kafka security included), moved to the run's own names.
    settings = base.model_copy(
        update={
            "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "database_url": env["DATABASE_URL"],
            "topic_prefix": env["DSPYOPS_TOPIC_PREFIX"],
            "event_store_schema": env["DSPYOPS_EVENT_STORE_SCHEMA"],
        }
    )
    configure_dspy_for_workers()
    await ensure_topics(
        settings.bootstrap_servers,
        Topics(settings.topic_prefix).all,
        partitions=settings.topic_partitions,
        replication=Replication.of(settings),
        security=settings.kafka_security,
    )
    return env, settings


# The worker's work by stage, first match wins (a stack is counted once): functions as
# py-spy names them (`Class.method` or `function`). Startup (imports, building the app)
# is left out of the shares.
STARTUP = ("_find_and_load", "build_worker_app", "prepare_topics", "tune_gc")
STAGES = (
    ("DSPy call", ("execute_program",)),
    ("recording", ("complete_executions", "ExecutionJobs._record_many")),
    ("planning", ("handle_many", "handle", "Processor._handle", "Processor._plan_many")),
    ("publishing", ("Publisher.publish", "Publisher.send")),
    (
        "envelopes",
        ("decode_envelope", "decode_command", "for_command", "Processor._outcome"),
    ),
    ("pricing, metrics", ("completion_of",)),
)
KAFKA_AND_LOOP = ("faust/", "aiokafka/", "mode/", "asyncio/")


def stage_of(frames: list[str]) -> str:
    """The stage a py-spy stack belongs to (`STAGES`, then Kafka and the event loop)."""
    names = {frame.partition(" (")[0] for frame in frames}
    if any(name in names for name in STARTUP):
        return "startup"
    for stage, functions in STAGES:
        if any(function in names for function in functions):
            return stage
    if any(part in frame for frame in frames for part in KAFKA_AND_LOOP):
        return "faust, aiokafka, asyncio"
    return "other"


def summarize_py_spy(path: str, top: int = 15) -> str:
    """Shares of the worker's samples by stage and self time per function, from py-spy
    raw stacks, startup left out."""
    leaf: dict[str, int] = {}
    stage: dict[str, int] = {}
    total = startup = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        name = stage_of(frames)
        if name == "startup":
            startup += count
            continue
        total += count
        stage[name] = stage.get(name, 0) + count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
    if total == 0:
        return f"no samples after startup ({startup} in startup)"
    lines = [
        f"{total} samples after startup (all threads, holding the GIL); {startup} in startup",
        "by stage:",
    ]
    lines += [f"  {n:>24}: {c / total:6.1%}" for n, c in sorted(stage.items(), key=lambda x: -x[1])]
    lines.append("by function (self):")
    lines += [
        f"  {c / total:6.1%}  {n[:110]}" for n, c in sorted(leaf.items(), key=lambda x: -x[1])[:top]
    ]
    return "\n".join(lines)


async def clean_up(settings: Settings) -> None:
    """The benchmark's topics and event store schema are its own: remove them."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_security.aiokafka_kwargs()
    )
    await admin.start()
    try:
        await admin.delete_topics(list(Topics(settings.topic_prefix).all))
    finally:
        await admin.close()
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.event_store_schema}" CASCADE')


if __name__ == "__main__":
    asyncio.run(main())
