"""Calling the event store from the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial
from typing import Any

from dspyops.aggregates.app.trace_context import carried, carrying_all


async def in_store(executor: Executor | None, fn: Any, *args: Any) -> Any:
    """Event store calls are blocking (psycopg); they run in the store's thread pool.

    The trace contexts the caller carries (`trace_context.carrying`) go with the call, so
    the events it saves keep them; nothing else of the caller's context does (a store
    thread's log lines name no command: it may be saving many).
    """
    traced = carried()
    call = partial(fn, *args) if not traced else partial(_carrying, traced, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


def _carrying(traced: Any, fn: Any, *args: Any) -> Any:
    with carrying_all(traced):
        return fn(*args)
