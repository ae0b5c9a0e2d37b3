"""Group commit for finished executions: many LM runs recorded in one transaction.

The event store serialises writers (one table lock per insert), so recording each
execution on its own caps a worker at one execution per insert round trip. Here one
drainer saves whatever finished while the previous save was in flight: no added wait
at low load, large batches at high load. The results outbox (`result_outbox`), which
serialises its writers the same way, uses the same `GroupCommit`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from dspyops.aggregates.app.context import Outcome
from dspyops.aggregates.app.executions import Completion

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Items submitted while a write is in flight are written together by the next one;
    each submitter gets its item's result (or the write's exception)."""

    def __init__(
        self, record_many: Callable[[Sequence[T]], Awaitable[list[R]]], *, max_batch: int = 500
    ) -> None:
        self._record_many = record_many
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                outcomes = await self._record_many([c for c, _ in batch])
            except Exception as exc:
                # Each waiter sees the failure (a transient one makes its record retry).
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)


RecordMany = Callable[[Sequence[Completion]], Awaitable[list[Outcome]]]


class CompletionBatcher(GroupCommit[Completion, Outcome]):
    """Finished executions, recorded together."""
