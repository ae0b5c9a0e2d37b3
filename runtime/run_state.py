"""A run's state shared between its worker thread and the loop reporting on it, and its
cooperative stop.

A thread cannot be killed, so stopping is cooperative: every LM call goes through a
``GuardedAdapter`` that raises ``Stopped`` once the run is cancelled or past its time
limit. ``RunState`` holds the step reached, the best score so far, the metric calls
made and every finished step, for the loop to publish as progress.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dspy.adapters.chat_adapter import ChatAdapter

CANCELLED = "cancelled"
TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
EXAMPLES_ERRORED = "examples_errored"
LM_CALLS_FAILED = "lm_calls_failed"
OPTIMIZATION_STEPS = 3


class Stopped(Exception):
    """Raised inside DSPy calls once a run must stop; ``reason`` is a code above."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"run stopped: {reason}")


class RunFailed(Exception):
    """The run cannot produce a result; ``code`` goes into the failure event."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class RunState:
    """Shared between the run's thread and the event loop that reports on it."""

    def __init__(self, time_limit_s: float) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.deadline = time.monotonic() + time_limit_s
        self.time_limit_s = time_limit_s
        self.reason: str | None = None
        self.step = 0
        self.total = OPTIMIZATION_STEPS
        self.best_score: float | None = None
        self.metric_calls = 0
        self.message = ""
        # Every finished step, kept so a reporter that polls slower than steps end
        # still reports each one: (step, total, best score so far, message).
        self.finished: list[tuple[int, int, float | None, str]] = []

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self._stop.set()

    def check(self) -> None:
        if not self._stop.is_set() and time.monotonic() > self.deadline:
            self.stop(TIME_LIMIT_EXCEEDED)
        if self._stop.is_set():
            raise Stopped(self.reason or CANCELLED)

    def advance(self, step: int, message: str, score: float | None = None) -> None:
        with self._lock:
            self.step, self.message = step, message
            if score is not None:
                self.best_score = score if self.best_score is None else max(self.best_score, score)
            self.finished.append((step, self.total, self.best_score, message))

    def finished_since(self, count: int) -> list[tuple[int, int, float | None, str]]:
        with self._lock:
            return self.finished[count:]

    def saw_score(self, score: float) -> None:
        with self._lock:
            self.best_score = score if self.best_score is None else max(self.best_score, score)

    def count_metric_call(self) -> None:
        with self._lock:
            self.metric_calls += 1

    def snapshot(self) -> tuple[int, int, float | None, int, str]:
        with self._lock:
            return self.step, self.total, self.best_score, self.metric_calls, self.message


class GuardedAdapter(ChatAdapter):
    """ChatAdapter (same prompts) that refuses to call the LM once the run must stop."""

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self._state = state

    def __call__(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self._state.check()
        return super().__call__(*args, **kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self._state.check()
        return await super().acall(*args, **kwargs)
