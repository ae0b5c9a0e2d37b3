"""Group calls into the event store: what arrives while one call is in flight goes together
in the next.

The event store serialises writers (one table lock per insert), so recording each
execution on its own caps a worker at one execution per insert round trip; planning each
on its own costs a thread handoff and its reads per execution. Here one drainer hands
over whatever arrived while the previous call was in flight: no added wait at low load,
large batches at high load. The worker batches finished executions (one save),
arriving executions (one planning call, its first reads in one query) and, with
exactly-once results, its writes to the results outbox (one commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Many items in, one result per item, in order; an item's result may be the exception it
# met (that waiter alone raises it). An exception raised by the call fails the whole batch.
CallMany = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


class Batcher(Generic[T, R]):
    def __init__(self, call_many: CallMany[T, R], *, max_batch: int = 500) -> None:
        self._call_many = call_many
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
                results = await self._call_many([item for item, _ in batch])
            except Exception as exc:
                # Each waiter sees the failure (a transient one makes its record retry).
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
