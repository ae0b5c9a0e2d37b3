"""Batcher: what arrives while a store call is in flight goes together in the next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from dspyops.aggregates.app import Outcome
from dspyops.consumers.batcher import Batcher


class Recorder:
    """record_many that holds each save until released, and remembers every batch."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, completions: Sequence[Any]) -> list[Outcome]:
        self.batches.append(list(completions))
        await self.release.wait()
        if self.fail_on is not None and self.fail_on in completions:
            raise RuntimeError("the store said no")
        return [Outcome(result_type="Done", subject=str(c)) for c in completions]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_completion_alone_is_saved_at_once() -> None:
    recorder = Recorder()
    recorder.release.set()
    batcher = Batcher(recorder)
    outcome = await batcher.submit(1)
    assert outcome.subject == "1"
    assert recorder.batches == [[1]]


async def test_what_finishes_during_a_save_goes_in_the_next_batch_each_waiter_its_own() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await settle()
    assert recorder.batches == [[1]]
    recorder.release.set()
    outcomes = await asyncio.gather(first, *later)
    assert [o.subject for o in outcomes] == ["1", "2", "3", "4"]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_batches_are_capped() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(5)]
    await settle()
    recorder.release.set()
    await asyncio.gather(*tasks)
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_save_fails_its_own_waiters_only() -> None:
    recorder = Recorder(fail_on=1)
    batcher = Batcher(recorder, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(4)]
    await settle()
    recorder.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    names = [type(r).__name__ for r in results]
    assert names == ["RuntimeError", "RuntimeError", "Outcome", "Outcome"]


async def test_an_item_s_own_exception_goes_to_its_waiter_alone() -> None:
    async def plan_many(items: Sequence[int]) -> list[Outcome | Exception]:
        return [
            ValueError(n) if n == 2 else Outcome(result_type="Done", subject=str(n)) for n in items
        ]

    batcher: Batcher[int, Outcome] = Batcher(plan_many)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(4)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Outcome", "Outcome", "ValueError", "Outcome"]
