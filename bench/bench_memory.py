"""Worker memory over a long run: RSS after 100,000 executions against RSS after 10,000.

    .venv/bin/python -m bench.bench_memory [--executions 100000] [--duplicates 10000]

Needs the local stack (`dspyops infra up`). A worker process with the zero-latency stub
LM (bench/stub_worker.py) gets `--executions` ExecuteProgram commands in batches of
`--batch`; halfway, `--duplicates` commands of the first 10,000 are sent again with their
ids (a producer that retries everything): each is answered from the store a second
time. After every batch the worker's resident memory is read (psutil); a line per 10,000
executions shows it as a bar. The target (issue 17): RSS at the end / RSS after the first
10,000 <= 1.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import psutil

from bench.bench_pipeline import StubStack, bench_stack, clean_up

TARGET = 1.1
FIRST = 10_000
BAR_WIDTH = 40


class CountingStack(StubStack):
    """A StubStack that counts every result per command: a duplicate's second answer too."""

    answers: Counter[str]

    async def _read(self) -> None:
        self.answers = Counter()
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    cause = json.loads(r.value)["causationid"]
                    self.answers[cause] += 1
                    self.received.setdefault(cause, now)

    async def send_all(self, envelopes: list[Any], answers: int, timeout_s: float = 600) -> None:
        """Sends `envelopes` and waits until each command has `answers` results."""
        for envelope in envelopes:
            await self._send(self.topics.executions, envelope)
        await self.producer.flush()
        deadline = time.perf_counter() + timeout_s
        while any(self.answers[e.id] < answers for e in envelopes):
            if time.perf_counter() > deadline:
                short = sum(self.answers[e.id] < answers for e in envelopes)
                raise TimeoutError(f"{short} of {len(envelopes)} commands not answered")
            await asyncio.sleep(0.05)

    def rss_mb(self) -> float:
        total = 0
        for worker in self.workers:
            process = psutil.Process(worker.pid)
            total += sum(p.memory_info().rss for p in [process, *process.children()])
        return total / 2**20


def bar(value: float, top: float) -> str:
    return "█" * max(1, round(BAR_WIDTH * value / top))


async def run(executions: int, duplicates: int, batch: int) -> float:
    env, settings = await bench_stack()
    try:
        pipe = CountingStack(settings, env, 0)
        async with pipe:
            began = time.perf_counter()
            first: list[Any] = []
            marks: list[tuple[int, float]] = []
            sent = 0
            duplicated = False
            while sent < executions:
                envelopes = [pipe._execution(sent + n) for n in range(batch)]
                await pipe.send_all(envelopes, answers=1)
                if sent < FIRST:
                    first += envelopes[: FIRST - sent]
                sent += batch
                if not duplicated and sent >= executions // 2:
                    # A producer that sends the first commands again, same ids: answered
                    # from the store (the same result id), nothing recorded twice.
                    again = first[:duplicates]
                    for start in range(0, len(again), batch):
                        await pipe.send_all(again[start : start + batch], answers=2)
                    duplicated = True
                    print(f"  sent {len(again):,} commands again with their ids: answered twice")
                if sent % FIRST == 0:
                    marks.append((sent, pipe.rss_mb()))
                    rate = sent / (time.perf_counter() - began)
                    print(
                        f"  {sent:>7,} executions  RSS {marks[-1][1]:6.1f} MB  "
                        f"{bar(marks[-1][1], marks[0][1] * 1.5)}  ({rate:.0f}/s)",
                        flush=True,
                    )
        ratio = marks[-1][1] / marks[0][1]
        print(
            f"RSS after {marks[-1][0]:,} / after {marks[0][0]:,}: {ratio:.3f} "
            f"(target <= {TARGET}); {duplicates:,} duplicated command ids; "
            f"{time.perf_counter() - began:.0f} s"
        )
        return ratio
    finally:
        await clean_up(settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--duplicates", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    if args.executions < 2 * FIRST or args.executions % FIRST or FIRST % args.batch:
        parser.error(
            f"--executions: a multiple of {FIRST:,}, at least {2 * FIRST:,}; "
            f"--batch: a divisor of {FIRST:,}"
        )
    asyncio.run(run(args.executions, args.duplicates, args.batch))


if __name__ == "__main__":
    main()
