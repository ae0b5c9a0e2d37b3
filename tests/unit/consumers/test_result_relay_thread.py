"""RelayThread: the relay on a loop of its own, its end reported to the worker's loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import cast

import pytest

from dspyops.consumers.relay_thread import RelayThread
from dspyops.consumers.result_relay import ResultRelay


class _Relay:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.thread: str | None = None
        self.woken = threading.Event()
        self.cancelled = threading.Event()

    async def run(self) -> None:
        self.thread = threading.current_thread().name
        if self.fail:
            raise ValueError("not transient")
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()

    def wake(self) -> None:
        self.woken.set()


async def test_a_relay_that_ends_in_error_raises_it_in_the_worker() -> None:
    relay = _Relay(fail=True)
    with pytest.raises(ValueError, match="not transient"):
        await asyncio.wait_for(RelayThread(cast(ResultRelay, relay)).run(), 10)
    assert relay.thread == "results-relay"


async def test_wake_reaches_the_relay_thread_and_cancelling_stops_it() -> None:
    relay = _Relay()
    thread = RelayThread(cast(ResultRelay, relay))
    running = asyncio.create_task(thread.run())
    await asyncio.to_thread(thread._ready.wait, 5)
    thread.wake()
    assert await asyncio.to_thread(relay.woken.wait, 5)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert relay.cancelled.is_set()
    assert not thread._thread.is_alive()
