"""A relay on an event loop of its own thread (the results relay's, `result_relay`).

Why: each transaction is several round trips to Kafka, and on the worker's loop each
of them waited for whatever else was ready there (up to 200 executions' callbacks).
Measured at 50 executions/s after a burst, transactions took 100 to 1,200 ms there
instead of 6 to 40. On a thread of its own the relay gets the interpreter at least
every switch interval (5 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from dspyops.consumers.result_relay import ResultRelay


class RelayThread:
    """Runs a relay on an event loop of its own thread; its end is raised on the
    caller's loop."""

    def __init__(self, relay: ResultRelay) -> None:
        self._relay = relay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="results-relay", daemon=True)

    async def run(self) -> None:
        """Starts the thread and returns when it ends: raises what ended the relay, and
        stops the thread when cancelled (the worker stopping)."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = (asyncio.get_running_loop(), ended)
        self._thread.start()
        try:
            await ended
        finally:
            await asyncio.to_thread(self.stop)

    def wake(self) -> None:
        """From any thread: new rows are stored."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing meanwhile
                self._loop.call_soon_threadsafe(self._relay.wake)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._ready.wait(timeout_s)
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        outcome: BaseException | None = None
        loop = asyncio.new_event_loop()
        try:
            self._loop = loop
            self._task = loop.create_task(self._relay.run())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the worker's loop, which raises it
            outcome = exc
        finally:
            self._ready.set()
            loop.close()
            caller, ended = self._ended
            if not caller.is_closed():
                with contextlib.suppress(RuntimeError):
                    caller.call_soon_threadsafe(_settle, ended, outcome)


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
