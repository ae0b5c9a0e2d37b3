"""What dspyops adds around one DSPy call, in-process, without Kafka or PostgreSQL.

    .venv/bin/python -m bench.bench_execute [--executions 400] [--rounds 3]

The three-step pipeline of `bench_programs` (query -> BM25 retrieve -> ChainOfThought)
with the zero-latency stub LM, called one at a time in these ways, each measured
`--rounds` times in turn; prints the best milliseconds per execution and the ratio to
plain DSPy:
  plain          `module.acall` in `dspy.context(lm=...)`
  usage          plus DSPy's usage tracking (our tracker)
  noop callback  plain, plus one DSPy callback that does nothing: what tracing through
                 DSPy's callbacks would cost (argument binding and type checks on every
                 module, adapter and LM call); dspyops no longer does that
  recorder       usage, plus our TraceRecorder on the instrumented module (runtime.trace)
  execute        `runtime.executor.execute_program`: all of the above, as the worker runs it
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import dspy
from dspy.utils.callback import BaseCallback

from bench.bench_programs import STEPS, documents, in_process_module, question
from bench.stub_worker import reply
from dspyops.runtime.executor import configure_dspy_for_workers, execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.trace import TraceRecorder, UsageTo
from dspyops.runtime.traced import instrument, instrument_lm
from tests.support.scripted_lm import ScriptedLM

STEP_NAMES = [step["name"] for step in STEPS]
Call = Callable[[int], Awaitable[None]]


def ways(
    make_module: Callable[[], dspy.Module], make_lm: Callable[[], dspy.BaseLM]
) -> dict[str, Call]:
    errors = LMErrors("default", Redactor())
    # The instrumented ones are separate objects, so plain DSPy runs untouched classes.
    module, lm = make_module(), make_lm()
    traced, traced_lm = instrument(make_module(), steps=STEP_NAMES), instrument_lm(make_lm())

    async def plain(n: int) -> None:
        with dspy.context(lm=lm):
            await module.acall(**question(n))

    async def usage(n: int) -> None:
        tracker = UsageTo(TraceRecorder().add_usage)
        with dspy.context(lm=lm, track_usage=True, usage_tracker=tracker):
            await module.acall(**question(n))

    async def noop_callback(n: int) -> None:
        with dspy.context(lm=lm, callbacks=[BaseCallback()]):
            await module.acall(**question(n))

    async def recorder(n: int) -> None:
        recording = TraceRecorder()
        tracker = UsageTo(recording.add_usage)
        with (
            dspy.context(lm=traced_lm, track_usage=True, usage_tracker=tracker),
            recording.recording(),
        ):
            await traced.acall(**question(n))
        recording.tree()

    async def execute(n: int) -> None:
        outcome = await execute_program(
            traced, question(n), traced_lm, timeout_s=60, errors=errors, steps=STEP_NAMES
        )
        assert outcome.ok, outcome

    return {
        "plain": plain,
        "usage": usage,
        "noop callback": noop_callback,
        "recorder": recorder,
        "execute": execute,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_dspy_for_workers()
    corpus = documents(1000)
    calls = ways(lambda: in_process_module(corpus), lambda: ScriptedLM(reply))
    best: dict[str, float] = {}
    for round_ in range(args.rounds):
        for name, call in calls.items():
            for n in range(20):  # warm-up
                await call(n)
            began = time.perf_counter()
            for n in range(args.executions):
                await call(n)
            ms = (time.perf_counter() - began) / args.executions * 1000
            best[name] = min(ms, best.get(name, ms))
        print(f"round {round_ + 1}/{args.rounds} done")
    for name, ms in best.items():
        print(f"{name:<14} {ms:6.2f} ms per execution   plain/this {best['plain'] / ms:5.2f}")


if __name__ == "__main__":
    asyncio.run(main())
