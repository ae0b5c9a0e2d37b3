"""Makes DSPy's progress bars safe when several optimizations run in one process.

DSPy clears tqdm's class-wide registry of bars (`tqdm.tqdm._instances.clear()`, in
`dspy.Evaluate` and its parallel executor) without tqdm's lock. With two runs in two
threads, one run's clear drops the other's live bar, whose own `remove` then raises
`KeyError: <weakref ... to 'tqdm'>` and fails that optimization. A registry whose
`remove` forgives a missing bar keeps tqdm's bookkeeping and ends the failure.
"""

from __future__ import annotations

import threading
from typing import Any
from weakref import WeakSet

import tqdm

_install_lock = threading.Lock()


class ForgivingRegistry(WeakSet[Any]):
    def remove(self, item: Any) -> None:
        self.discard(item)


def make_progress_bars_thread_safe() -> None:
    """Idempotent; call before any run starts."""
    with _install_lock:
        current = tqdm.tqdm._instances
        if not isinstance(current, ForgivingRegistry):
            tqdm.tqdm._instances = ForgivingRegistry(list(current))
