"""Calling the event store from the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial
from typing import Any


async def in_store(executor: Executor | None, fn: Any, *args: Any) -> Any:
    """Event store calls are blocking (psycopg); they run in the store's thread pool."""
    return await asyncio.get_running_loop().run_in_executor(executor, partial(fn, *args))
