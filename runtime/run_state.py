"""A run's state shared between its worker thread and the loop reporting on it, and its
cooperative stop.

A thread cannot be killed, so stopping is cooperative: every LM call goes through a
``GuardedAdapter`` that raises ``Stopped`` once the run is cancelled, past its time
limit or over its budget. ``RunState`` holds the step reached, the best score so far,
the metric calls made, every finished step, and what the run spent (LM calls, tokens,
dollars: ``runtime.trace.UsageTo(state.add_usage)`` counts each
LM response), for the loop to publish as progress, and the candidates scored since the
run started (``Checkpoint``), for the loop to record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from dspy.adapters.chat_adapter import ChatAdapter

CANCELLED = "cancelled"
TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
EXAMPLES_ERRORED = "examples_errored"
LM_CALLS_FAILED = "lm_calls_failed"
BUDGET_EXCEEDED = "budget_exceeded"
OPTIMIZATION_STEPS = 3


@dataclass(frozen=True)
class Optimized:
    """A program state worth a new version: its score and the baseline's, both on dev."""

    state: dict[str, Any]
    baseline_score: float
    optimized_score: float


@dataclass(frozen=True)
class Checkpoint:
    """A candidate the run scored on the dev split, recorded so that a run started again
    after its worker died skips it (``runtime.random_search``)."""

    seed: int  # the optimizer's candidate number
    score: float  # 0..1
    state: dict[str, Any]  # the candidate's ``dump_state()``, as JSON
    baseline_score: float  # the starting version's score, 0..1
    # What the run had spent by then, over all its starts: lm_calls, prompt_tokens,
    # completion_tokens.
    spent: dict[str, int]


class Stopped(Exception):
    """Raised inside DSPy calls once a run must stop; ``reason`` is a code above.

    ``best``: on the way out of an optimization stopped over its budget, the best
    candidate it scored, when that beat the baseline (``runtime.candidates``).
    """

    def __init__(self, reason: str, best: Optimized | None = None) -> None:
        self.reason = reason
        self.best = best
        super().__init__(f"run stopped: {reason}")


class RunFailed(Exception):
    """The run cannot produce a result; ``code`` goes into the failure event."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class RunState:
    """Shared between the run's thread and the event loop that reports on it."""

    def __init__(
        self,
        time_limit_s: float,
        *,
        budget: dict[str, Any] | None = None,
        prices: tuple[float, float] | None = None,
    ) -> None:
        """``budget``: events.commands.RunBudget as JSON (None: no limit); ``prices``:
        USD per (prompt, completion) token of the run's LM, None when unknown."""
        self._lock = threading.Lock()
        budget = budget or {}
        self.max_lm_calls: int | None = budget.get("max_lm_calls")
        self.max_usd: float | None = budget.get("max_usd")
        self.prices = prices
        self.lm_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
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
        # Every candidate scored, in order, for the loop to record (same reason).
        self.checkpoints: list[Checkpoint] = []

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self._stop.set()

    def check(self) -> None:
        if not self._stop.is_set() and time.monotonic() > self.deadline:
            self.stop(TIME_LIMIT_EXCEEDED)
        if not self._stop.is_set() and self.over_budget() is not None:
            self.stop(BUDGET_EXCEEDED)
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

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._lock:
            self.checkpoints.append(checkpoint)

    def checkpoints_since(self, count: int) -> list[Checkpoint]:
        with self._lock:
            return self.checkpoints[count:]

    def count_metric_call(self) -> None:
        with self._lock:
            self.metric_calls += 1

    # --- what the run spent -------------------------------------------------------

    def carry(self, spent: dict[str, int]) -> None:
        """Count what the run spent before it was started again (a checkpoint's ``spent``)."""
        with self._lock:
            self.lm_calls += int(spent.get("lm_calls", 0))
            self.prompt_tokens += int(spent.get("prompt_tokens", 0))
            self.completion_tokens += int(spent.get("completion_tokens", 0))

    def counters(self) -> dict[str, int]:
        """What the run spent so far, as a checkpoint records it."""
        with self._lock:
            return {
                "lm_calls": self.lm_calls,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            }

    def add_usage(self, usage: dict[str, Any]) -> None:
        """One LM response and the tokens it was billed for (from RunUsage)."""
        with self._lock:
            self.lm_calls += 1
            self.prompt_tokens += _tokens(usage.get("prompt_tokens"))
            self.completion_tokens += _tokens(usage.get("completion_tokens"))

    def cost_usd(self) -> float | None:
        """Dollars spent so far; None when the LM's price is unknown."""
        if self.prices is None:
            return None
        with self._lock:
            return self.prompt_tokens * self.prices[0] + self.completion_tokens * self.prices[1]

    def spend(self) -> dict[str, Any]:
        """What the run spent so far, as results carry it."""
        cost = self.cost_usd()
        with self._lock:
            prompt, completion = self.prompt_tokens, self.completion_tokens
            return {
                "lm_calls": self.lm_calls,
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
                "cost_usd": cost,
            }

    def over_budget(self) -> str | None:
        """Says how the run went over its budget, or None while it is within it."""
        if self.max_lm_calls is not None and self.lm_calls >= self.max_lm_calls:
            return f"{self.lm_calls} LM calls made; the budget allows {self.max_lm_calls}"
        cost = self.cost_usd()
        if self.max_usd is not None and cost is not None and cost >= self.max_usd:
            return f"${cost:.6f} spent; the budget allows ${self.max_usd:g}"
        return None

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


def _tokens(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
