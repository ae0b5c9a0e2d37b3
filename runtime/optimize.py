"""One optimization or evaluation run, synchronous, meant for a worker thread.

The caller owns the thread and the event loop; this module only runs DSPy and keeps a
``RunState`` the caller reads to publish progress. DSPy is configured per thread with
``dspy.context`` (never ``dspy.configure``: it may only be called from one thread).

A thread cannot be killed, so stopping is cooperative: every LM call goes through a
``GuardedAdapter`` that raises ``Stopped`` once the run is cancelled or past its time
limit. Optimizers treat that as a failed example; they either give up (``max_errors``)
or finish quickly with every later call failing, and the run then reports why it
stopped, never the half-optimized program.

Steps (``RunState.step`` of ``total``): 1 baseline scored on dev, 2 optimizer compiled,
3 optimized program scored on dev. ``metric_calls`` grows while the optimizer works.

Slightly over 300 lines on purpose: the phases and the stop they honour (``RunState``,
``GuardedAdapter``, ``_guarded``) are one mechanism and are read together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dspy
from dspy.adapters.chat_adapter import ChatAdapter
from dspy.utils.callback import BaseCallback
from pydantic_core import to_jsonable_python

from dspyops.runtime.evaluate import Scored, score_program, to_examples
from dspyops.runtime.lm_errors import INTERNAL_ERROR, LMErrors
from dspyops.runtime.modules import build_module, state_problems
from dspyops.runtime.optimizers import InvalidConfig, compile_program, parse_config
from dspyops.runtime.progress_bars import make_progress_bars_thread_safe
from dspyops.runtime.scoring import Metric, MetricOptionsError, UnknownMetric, build_metric

log = logging.getLogger(__name__)
T = TypeVar("T")

CANCELLED = "cancelled"
TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
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


class _DevScores(BaseCallback):
    """Best score so far while compiling: every ``dspy.Evaluate`` over the whole dev split.

    Optimizers that search (random search, MIPROv2) score candidates with
    ``dspy.Evaluate``; evaluations on a minibatch are left out, their scores are not
    comparable with the dev split's.
    """

    def __init__(self, state: RunState, dev_size: int) -> None:
        self._state = state
        self._dev_size = dev_size
        self._sizes: dict[str, int] = {}

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        devset = inputs.get("devset") or getattr(instance, "devset", None) or []
        self._sizes[call_id] = len(devset)

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        size = self._sizes.pop(call_id, 0)
        score = getattr(outputs, "score", None)
        if exception is None and size == self._dev_size and isinstance(score, int | float):
            self._state.saw_score(round(float(score) / 100, 4))


class _CountedMetric:
    """The metric as DSPy calls it, counting calls for progress and honouring a stop."""

    def __init__(self, metric: Metric, state: RunState) -> None:
        self._metric = metric
        self._state = state
        self.__name__ = metric.name

    def __call__(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> float | bool:
        self._state.count_metric_call()
        return self._metric(gold, pred, trace, pred_name, pred_trace)


@dataclass(frozen=True)
class ProgramSpec:
    """What the run needs to rebuild the program: no aggregates, only plain values."""

    signature: type[dspy.Signature]
    module: str
    state: dict[str, Any] | None
    input_names: Sequence[str]
    output_names: Sequence[str]


@dataclass(frozen=True)
class Optimized:
    state: dict[str, Any]
    baseline_score: float
    optimized_score: float


def run_optimization(
    spec: ProgramSpec,
    *,
    optimizer: str,
    metric_name: str,
    config: dict[str, Any],
    trainset: list[dict[str, Any]],
    devset: list[dict[str, Any]],
    lm: dspy.BaseLM,
    state: RunState,
    errors: LMErrors,
) -> Optimized:
    """Baseline, compile, score; raises RunFailed (told by `errors`) or Stopped."""
    make_progress_bars_thread_safe()
    parsed = _config(optimizer, config)
    metric = _metric(metric_name, parsed.metric_options, spec.output_names)
    train = to_examples(trainset, spec.input_names)
    if not train:
        raise RunFailed("dataset_too_small", "the dataset has no training examples")
    # A dataset without a dev split is scored on its training examples (said in the docs).
    dev = to_examples(devset, spec.input_names) or train
    counted = _CountedMetric(metric, state)
    callbacks = [_DevScores(state, len(dev))]
    with dspy.context(lm=lm, adapter=GuardedAdapter(state), callbacks=callbacks):
        student = build_module(spec.module, spec.signature, spec.state)
        baseline = _guarded(
            state, errors, lambda: score_program(student, dev, metric, num_threads=1)
        )
        state.advance(1, "baseline scored on the dev split", baseline.score)
        compiled = _guarded(
            state,
            errors,
            lambda: compile_program(
                optimizer,
                parsed,
                student.deepcopy(),
                metric=counted,
                trainset=train,
                devset=dev,
                lm=lm,
            ),
        )
        state.advance(2, f"{optimizer} compiled")
        optimized = _guarded(
            state, errors, lambda: score_program(compiled, dev, metric, num_threads=1)
        )
        state.advance(3, "optimized program scored on the dev split", optimized.score)
    return Optimized(_saved_state(spec, compiled), baseline.score, optimized.score)


def run_evaluation(
    spec: ProgramSpec,
    *,
    metric_name: str,
    devset: list[dict[str, Any]],
    lm: dspy.BaseLM,
    state: RunState,
    errors: LMErrors,
) -> Scored:
    make_progress_bars_thread_safe()
    metric = _metric(metric_name, {}, spec.output_names)
    dev = to_examples(devset, spec.input_names)
    if not dev:
        raise RunFailed("dataset_too_small", "the dataset has no examples to score")
    state.total = 1
    with dspy.context(lm=lm, adapter=GuardedAdapter(state)):
        program = build_module(spec.module, spec.signature, spec.state)
        scored = _guarded(state, errors, lambda: score_program(program, dev, metric, num_threads=1))
    state.advance(1, "scored", scored.score)
    return scored


def _config(optimizer: str, config: dict[str, Any]) -> Any:
    try:
        return parse_config(optimizer, config)
    except InvalidConfig as exc:
        raise RunFailed("invalid_config", str(exc)) from exc


def _metric(name: str, options: Any, output_names: Sequence[str]) -> Metric:
    try:
        return build_metric(name, options, list(output_names))
    except UnknownMetric as exc:
        raise RunFailed("unknown_metric", str(exc)) from exc
    except MetricOptionsError as exc:
        raise RunFailed("invalid_metric_options", str(exc)) from exc


def _guarded(state: RunState, errors: LMErrors, work: Callable[[], T]) -> T:
    """Run one phase; a stop during it wins over whatever the phase returned or raised.

    A failure is told by `errors`: an exception's own text may echo the LM's API key.
    """
    try:
        result = work()
    except Stopped:
        raise Stopped(state.reason or CANCELLED) from None
    except RunFailed:
        raise
    except Exception as exc:
        state.check()
        code, message = errors.describe(exc)
        if code == INTERNAL_ERROR:
            log.exception("optimizer failed")
            code = "optimizer_error"
        raise RunFailed(code, message) from exc
    state.check()
    return result


def _saved_state(spec: ProgramSpec, program: dspy.Module) -> dict[str, Any]:
    state = to_jsonable_python(program.dump_state(), fallback=str)
    # The version must load later; refuse to record a state our loader would reject.
    problems = state_problems(build_module(spec.module, spec.signature), state)
    if problems:
        raise RunFailed("invalid_result", "; ".join(problems))
    return dict(state)
