"""A three-step pipeline through dspyops against the same pipeline called in-process.

    .venv/bin/python -m bench.bench_programs [--executions 2000] [--workers N] [--otel]

Needs the local stack (`dspyops infra up`). The pipeline is the seed's RAG shape,
`query (Predict) -> retrieve (BM25, k=3) -> answer (ChainOfThought)`, over a corpus of
`--documents` documents; the LM is the zero-latency stub that answers each predictor's
own output fields. Prints:
  (a) in-process: the pipeline module built as the worker builds it, `acall`ed 200 at a
      time with the same stub LM and the same BM25 index (executions/s),
  (b) end to end: RegisterCorpus and RegisterProgram on Kafka, then a burst of
      ExecuteProgram commands to `--workers` worker processes (one consumer group),
      until the last result is consumed (executions/s), and the ratio b/a (target >= 0.5),
  and p50/p99 latency through Kafka at half of (b)'s rate;
  (c) with `--otel`: (b) with OpenTelemetry tracing off and on (OTLP/HTTP to a loopback
      receiver, every execution sampled), in turns, and the ratio on/off (target >= 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from typing import Any

import dspy

from bench.bench_pipeline import StubStack, bench_stack, clean_up, summarize_py_spy, tracing_cost
from bench.stub_worker import reply
from dspyops.aggregates.pipeline import Checkers, check_pipeline
from dspyops.events.steps import Step
from dspyops.runtime.programs import PIPELINE, ProgramShape, build_program
from dspyops.runtime.retrieval import IndexCache
from dspyops.signatures import compile_signature
from tests.support.scripted_lm import ScriptedLM

CORPUS = "bench-facts"
SIGNATURE = "question: str -> answer: str, confidence: float[0, 1]"
STEPS: list[dict[str, Any]] = [
    {"name": "query", "kind": "Predict", "signature": "question: str -> query: str"},
    {
        "name": "retrieve",
        "kind": "Retrieve",
        "corpus": CORPUS,
        "k": 3,
        "bindings": {"query": "query.query"},
    },
    {
        "name": "answer",
        "kind": "ChainOfThought",
        "signature": "question: str, context: list[str] -> answer: str, confidence: float[0, 1]",
        "bindings": {"context": "retrieve.passages"},
    },
]
WORDS = "capital city river country France Paris Berlin Seine mountain lake coast".split()  # noqa: SIM905


def documents(count: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{"id": f"d{n}", "text": " ".join(rng.choices(WORDS, k=12))} for n in range(count)]


def question(n: int) -> dict[str, str]:
    return {"question": f"Which city is the capital of France? ({n})"}


def in_process_module(docs: list[dict[str, str]]) -> dspy.Module:
    """The module the worker builds from the plan: same normalization, same BM25 index."""
    compiled = compile_signature(SIGNATURE)
    checkers = Checkers(lambda corpus: True, lambda names: [], lambda name: [])
    steps, outputs = check_pipeline(
        compiled, [Step.model_validate(s) for s in STEPS], None, checkers
    )
    cache = IndexCache(lambda corpus, version: [(d["id"], d["text"]) for d in docs])

    def search(corpus: str, query: str, k: int) -> Any:
        return cache.search(corpus, 1, query, k)

    shape = ProgramShape(PIPELINE, compiled, steps, outputs)
    return build_program(shape, search=search, corpora={CORPUS: 1})


async def in_process_rate(module: dspy.Module, count: int, concurrency: int = 200) -> float:
    lm = ScriptedLM(reply)
    sem = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with sem:
            with dspy.context(lm=lm):
                result = await module.acall(**question(n))
        assert result.answer == "Paris", result

    await asyncio.gather(*(one(n) for n in range(50)))  # warm-up: index, adapters
    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return count / (time.perf_counter() - began)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--py-spy", metavar="FILE", help="record the worker with py-spy into FILE")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for (b)")
    parser.add_argument(
        "--otel",
        action="store_true",
        help="also measure (b) with OpenTelemetry tracing on, against off, in turns",
    )
    args = parser.parse_args()
    env, settings = await bench_stack()
    docs = documents(args.documents)
    print(
        f"pipeline: query (Predict) -> retrieve (BM25 over {len(docs)} documents, k=3) -> "
        "answer (ChainOfThought); stub LM 0 ms"
    )
    try:
        direct = await in_process_rate(in_process_module(docs), args.executions)
        print(f"(a) in-process Pipeline.acall:     {direct:8.0f} executions/s")
        program = {"name": "bench rag", "signature": SIGNATURE, "steps": STEPS}
        setup = [("RegisterCorpus", {"corpus_id": CORPUS, "name": "facts", "documents": docs})]
        async with StubStack(
            settings,
            env,
            0,
            args.py_spy,
            args.workers,
            setup=setup,
            program=program,
            inputs=question,
        ) as stack:
            rate = await stack.run_burst(args.executions)
            workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
            print(f"(b) end to end via Kafka, {workers}: {rate:6.0f} executions/s")
            print(f"    ratio b/a:                     {rate / direct:8.2f}  (target >= 0.5)")
            latencies = await stack.run_paced(rate / 2, seconds=5)
            p99 = statistics.quantiles(latencies, n=100)[98]
            print(
                f"    at half of (b) ({rate / 2:.0f}/s): p50 {statistics.median(latencies):.1f} "
                f"ms, p99 {p99:.1f} ms"
            )
        if args.otel:
            await tracing_cost(
                settings,
                env,
                args.executions,
                args.workers,
                setup=setup,
                program=program,
                inputs=question,
            )
    finally:
        await clean_up(settings)
    if args.py_spy and os.path.exists(args.py_spy):  # noqa: ASYNC240 (once, at the end)
        print("\nwhere the worker's time goes (py-spy):")
        print(summarize_py_spy(args.py_spy))


if __name__ == "__main__":
    asyncio.run(main())
