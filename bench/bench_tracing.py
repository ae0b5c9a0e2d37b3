"""What tracing costs the worker per command, counted in instructions, so that the figure
does not move with whatever else runs on the machine.

    .venv/bin/python -m bench.bench_tracing [--commands 100]

Runs the worker's per-record path in process (`Processor`, an in-memory event store, a
stub LM that answers at once) for a one-signature Predict program, one child process
per turn under valgrind's callgrind, instrumented only around the measured commands
(after the worker's own `tune_gc`):

  off        tracing off (the baseline);
  spans      spans made and handed to a processor that drops them;
  exported   the worker's own set-up (BatchSpanProcessor) with the OTLP encoding
             (`otlp.encode_request`) and nothing sent.

Prints instructions per command, each turn's extra over `off`, and the ratio off / on
(1.0: tracing costs nothing). `bench_pipeline --otel` measures the same through Kafka in
executions per second, which is the issue's target but moves with the machine's load.
Needs valgrind (`apt-get install valgrind`); without it, prints CPU time per command
(noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench.stub_worker import StubProfiles, reply
from dspyops.aggregates.app import DspyOps, ExecutionPlan, in_memory_env
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.consumers.telemetry import Telemetry
from dspyops.consumers.worker import tune_gc
from dspyops.events.codec import encode
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics
from dspyops.otlp import encode_request
from dspyops.runtime.redaction import Redactor
from tests.support.scripted_lm import ScriptedLM

TURNS = ("off", "spans", "exported")
TOPICS = Topics("bench.")
WARM_UP = 30


class _Drop(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        pass


class _EncodeOnly(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_request(spans)
        return SpanExportResult.SUCCESS


def telemetry(turn: str) -> Telemetry:
    if turn == "spans":
        return Telemetry.with_processor(_Drop(), TracerProvider())
    if turn == "exported":
        return Telemetry.with_exporter(_EncodeOnly(), TracerProvider())
    return Telemetry()


async def _send(processor: Processor, topic: str, envelope: Envelope) -> None:
    await processor.process(Incoming(topic, 0, 0, b"k", encode(envelope)))


def _instrument(on: bool) -> None:
    """callgrind counts only between these (a no-op outside valgrind)."""
    if os.environ.get("BENCH_TRACING_CALLGRIND"):
        flag = "on" if on else "off"
        subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], check=True)


async def child(turn: str, commands: int) -> float:
    """One turn in this process; CPU seconds per command of the measured part."""
    tracing = telemetry(turn)
    app = DspyOps(in_memory_env())
    lm = ScriptedLM(reply, keep_requests=False)
    jobs = ExecutionJobs(
        app, StubProfiles(lm), ModuleCache(), redactor=Redactor(), telemetry=tracing
    )
    processor = Processor(app, TOPICS, {ExecutionPlan: jobs.run}, telemetry=tracing)
    register = {"program_id": "q", "name": "q", "signature": "question: str -> answer: str"}
    await _send(processor, TOPICS.programs, command_envelope("RegisterProgram", register))
    execute = [
        command_envelope("ExecuteProgram", {"program_id": "q", "inputs": {"question": f"{n}?"}})
        for n in range(WARM_UP + commands)
    ]
    for envelope in execute[:WARM_UP]:
        await _send(processor, TOPICS.executions, envelope)
    flush = [p.force_flush for p in tracing._processors]
    for each in flush:
        each()
    tune_gc()  # as the worker does once it is built
    _instrument(True)
    started = time.process_time()
    for envelope in execute[WARM_UP:]:
        await _send(processor, TOPICS.executions, envelope)
    for each in flush:  # what the export thread does for these commands, counted too
        each()
    elapsed = time.process_time() - started
    _instrument(False)
    return elapsed / commands


def run_turn(turn: str, commands: int, valgrind: str | None) -> float:
    """Instructions per command under callgrind, else CPU microseconds per command."""
    argv = [sys.executable, "-m", "bench.bench_tracing", "--child", turn]
    argv += ["--commands", str(commands)]
    if valgrind is None:
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        return float(out.split()[-1]) * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [valgrind, "--tool=callgrind", "--instr-atstart=no"]
        cmd += [f"--callgrind-out-file={Path(tmp) / 'out'}", *argv]
        env = {**os.environ, "BENCH_TRACING_CALLGRIND": "1"}
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if collected is None:
        raise RuntimeError(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(collected.group(1)) / commands


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--child", choices=TURNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(asyncio.run(child(args.child, args.commands)))
        return
    valgrind = shutil.which("valgrind")
    unit = "instructions" if valgrind else "CPU us (no valgrind: noisy)"
    print(f"{args.commands} ExecuteProgram commands per turn, {unit} per command:")
    cost: dict[str, float] = {}
    for turn in TURNS:
        cost[turn] = run_turn(turn, args.commands, valgrind)
        extra = "" if turn == "off" else f"  (+{cost[turn] / cost['off'] - 1:.1%} over off)"
        print(f"  {turn:<9} {cost[turn]:>14,.0f}{extra}", flush=True)
    print(f"tracing off / on (exported): {cost['off'] / cost['exported']:.2f}")


if __name__ == "__main__":
    main()
