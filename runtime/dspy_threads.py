"""DSPy's worker threads (``dspy.Parallel``, ``dspy.Evaluate``, optimizers) run in the
context of the thread that started them.

``dspy.utils.parallelizer.ParallelExecutor`` starts a thread pool and hands each thread
DSPy's own settings (``thread_local_overrides``), nothing else of the caller's
``contextvars``: the execution being traced (``runtime.trace.current``), the command's
log fields and the OpenTelemetry context stay behind, so a module that fans out with
``dspy.Parallel`` would record no spans from its threads. ``propagate_context`` wraps
``ParallelExecutor.execute`` once per process: with more than one thread, each item runs
in a copy of the caller's context, with DSPy's per-thread overrides (as its worker set
them) kept. Sequential execution (one thread) runs in the caller's thread already.

DSPy also deep-copies the usage tracker per thread "so that each thread tracks its own
usage", and never adds the copies' counts back. dspyops' tracker (``UsageTo``) is the
execution's or the run's account, so it is shared instead (its ``__deepcopy__``): every
LM call of every thread counts, and in its own LM span.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from dspy.dsp.utils.settings import thread_local_overrides
from dspy.utils.parallelizer import ParallelExecutor

_lock = threading.Lock()
_ORIGINAL = ParallelExecutor.execute


def propagate_context() -> None:
    """Make DSPy's worker threads run in their caller's context; idempotent."""
    with _lock:
        if ParallelExecutor.execute is not _ORIGINAL:
            return
        ParallelExecutor.execute = _execute


def _execute(self: ParallelExecutor, function: Callable[[Any], Any], data: list[Any]) -> Any:
    if self.num_threads == 1:
        return _ORIGINAL(self, function, data)
    return _ORIGINAL(self, in_callers_context(function), data)


def in_callers_context(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``function`` to be called in other threads, each call in a copy of this thread's
    context with the calling thread's DSPy overrides."""
    caller = contextvars.copy_context()

    def call(item: Any) -> Any:
        overrides = thread_local_overrides.get()

        def run() -> Any:
            thread_local_overrides.set(overrides)
            return function(item)

        return caller.copy().run(run)

    return call
