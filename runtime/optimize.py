"""One optimization or evaluation run, synchronous, meant for a worker thread.

The caller owns the thread and the event loop; this module only runs DSPy and keeps a
``RunState`` the caller reads to publish progress. DSPy is configured per thread with
``dspy.context`` (never ``dspy.configure``: it may only be called from one thread).

A thread cannot be killed, so stopping is cooperative: every LM call goes through a
``GuardedAdapter`` that raises ``Stopped`` once the run is cancelled or past its time
limit. Optimizers treat that as a failed example; they either give up (``max_errors``)
or finish quickly with every later call failing, and the run then reports why it
stopped, never the half-optimized program. One exception: a run stopped over its
budget carries out (``Stopped.best``) the best candidate the optimizer scored on the
dev split before the stop, when it beat the baseline, for the run to keep as a version
(``runtime.candidates`` says which optimizers score candidates).

Steps (``RunState.step`` of ``total``): 1 baseline scored on dev, 2 optimizer compiled,
3 optimized program scored on dev. ``metric_calls`` grows while the optimizer works.

Checkpoints: a resumable optimizer (``runtime.optimizers``) tells each candidate it
scored, and the run queues it (``RunState.checkpoint``) for the worker to record. A run
started again with checkpoints takes the baseline's score, the counters of what it spent
and the candidates from them, and makes only the others.

Failed calls: a version is never made from a run whose calls failed. An errored
example (see ``runtime.evaluate``) in either score fails the run, and so does a failed
LM call while compiling: the optimizer carries on without it (a bootstrapped demo
missing, a candidate scored 0) and the result would encode the outage. The code is the
calls' own (``lm_error`` ...) when every call failed, else ``examples_errored`` or
``lm_calls_failed``. An evaluation fails only when no example could be scored.

The state the loop reads and the cooperative stop live in ``runtime.run_state``.

This module is long because optimizations and evaluations share their metric (a
registered one or a judge program, ``runtime.judge``), phases and failure rules here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import dspy
from dspy.utils.callback import BaseCallback
from pydantic_core import to_jsonable_python

from dspyops.runtime.candidates import BestCandidate, Candidate, DevScores
from dspyops.runtime.evaluate import Scored, score_program, to_examples
from dspyops.runtime.failures import Failed, Tally
from dspyops.runtime.judge import Judge, JudgeMetric
from dspyops.runtime.lm_errors import INTERNAL_ERROR, LMErrors
from dspyops.runtime.modules import build_module, state_problems
from dspyops.runtime.optimizers import OPTIMIZERS, InvalidConfig, compile_program, parse_config
from dspyops.runtime.progress_bars import make_progress_bars_thread_safe
from dspyops.runtime.provenance import ResponseModels, watched
from dspyops.runtime.random_search import Checkpoints
from dspyops.runtime.run_state import (
    BUDGET_EXCEEDED,
    CANCELLED,
    EXAMPLES_ERRORED,
    LM_CALLS_FAILED,
    Checkpoint,
    GuardedAdapter,
    Optimized,
    RunFailed,
    RunState,
    Stopped,
)
from dspyops.runtime.run_trace import NO_TRACE, NoTrace, record_usage
from dspyops.runtime.scoring import (
    Metric,
    MetricOptionsError,
    UnknownMetric,
    build_metric,
    judge_options,
)
from dspyops.runtime.trace import UsageTo

log = logging.getLogger(__name__)
T = TypeVar("T")


class _LMCalls(BaseCallback):
    """Every LM call made while installed, and why each failed one failed."""

    def __init__(self) -> None:
        self.tally = Tally()

    def on_lm_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        self.tally.add(None if exception is None else Failed.of(exception))


class _CountedMetric:
    """The metric as DSPy calls it, counting calls for progress and honouring a stop."""

    def __init__(self, metric: Metric | JudgeMetric, state: RunState) -> None:
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
    ) -> Any:
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
    # Builds the program with a state (or none): a pipeline's or a plugin's way
    # (runtime.programs); without it, `module` is a one-signature kind.
    build: Callable[[dict[str, Any] | None], dspy.Module] | None = None
    # A pipeline's step names: its trace shows them as steps (runtime.traced).
    steps: Sequence[str] = ()

    def program(self, state: dict[str, Any] | None) -> dspy.Module:
        if self.build is not None:
            return self.build(state)
        return build_module(self.module, self.signature, state)

    def traced(self, trace: NoTrace) -> ProgramSpec:
        """This spec, building programs `trace` records the calls of."""
        if trace is NO_TRACE:
            return self
        return replace(self, build=lambda state: trace.traced(self.program(state), self.steps))


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
    models: ResponseModels | None = None,
    judge: Judge | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    trace: NoTrace = NO_TRACE,
) -> Optimized:
    """Baseline, compile, score; raises RunFailed (told by `errors`) or Stopped.
    `models` collects the models that answered (runtime.provenance); `judge` is the
    judge program of a `judge:` metric; `checkpoints`: what the run recorded before a
    worker started it again (a resumable optimizer's candidates, in recorded order);
    `trace` records the program and LM calls of each phase (runtime.run_trace)."""
    make_progress_bars_thread_safe()
    lm, watching = watched(trace.traced_lm(lm), models)
    spec = spec.traced(trace)
    parsed = _config(optimizer, config)
    resumed = list(checkpoints) if OPTIMIZERS[optimizer].resumable else []
    if resumed:
        # The counters go on from what the run had spent at its last checkpoint.
        state.carry(max((c.spent for c in resumed), key=lambda s: s.get("lm_calls", 0)))
    metric = _metric(metric_name, parsed.metric_options, spec.output_names, judge)
    train = to_examples(trainset, spec.input_names)
    if not train:
        raise RunFailed("dataset_too_small", "the dataset has no training examples")
    # A dataset without a dev split is scored on its training examples (said in the docs).
    dev = to_examples(devset, spec.input_names) or train
    counted = _CountedMetric(metric, state)
    callbacks = [DevScores(state, len(dev))]
    compiling = _LMCalls()
    with dspy.context(
        lm=lm,
        adapter=GuardedAdapter(state),
        callbacks=callbacks,
        track_usage=True,
        usage_tracker=UsageTo(_spent(state, trace)),
        **watching,
    ):
        student = spec.program(spec.state)
        with trace.phase("baseline"):
            baseline = _baseline(state, errors, student, dev, metric, resumed)
        candidates = BestCandidate(state, dev)
        scored = _scored_before(state, candidates, resumed)

        def record(seed: int, candidate: Candidate) -> None:
            # Not a checkpoint: a candidate scored while stopping (the score measures the
            # stop), or after a failed LM call (the run fails; started again, it redoes it).
            if state.reason is None and not compiling.tally.failed:
                spent = state.counters()
                state.checkpoint(
                    Checkpoint(seed, candidate.score, candidate.state, baseline, spent)
                )

        with _keeping_best(spec, state, candidates, baseline, compiling.tally):
            with (
                dspy.context(callbacks=[*callbacks, compiling, candidates]),
                trace.phase("compile"),
            ):
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
                        checkpoints=Checkpoints(scored, record, spec.program),
                    ),
                )
            _no_failed_calls(
                f"compiling with {optimizer}", compiling.tally, "LM calls", LM_CALLS_FAILED
            )
            state.advance(2, f"{optimizer} compiled")
            with trace.phase("optimized"):
                optimized = _guarded(
                    state, errors, lambda: score_program(compiled, dev, metric, num_threads=1)
                )
        _no_failed_calls(
            "scoring the optimized program", optimized.errors, "examples", EXAMPLES_ERRORED
        )
        state.advance(3, "optimized program scored on the dev split", optimized.score)
    return Optimized(_saved_state(spec, compiled), baseline, optimized.score)


def _baseline(
    state: RunState,
    errors: LMErrors,
    student: dspy.Module,
    dev: list[dspy.Example],
    metric: Metric | JudgeMetric,
    resumed: Sequence[Checkpoint],
) -> float:
    """The starting version's score on dev: scored, or as recorded before a restart."""
    if resumed:
        score = resumed[-1].baseline_score
        message = (
            f"baseline scored on the dev split before the interruption; "
            f"{len({c.seed for c in resumed})} candidates kept from checkpoints"
        )
        state.advance(1, message, score)
        return score
    scored = _guarded(state, errors, lambda: score_program(student, dev, metric, num_threads=1))
    _no_failed_calls("scoring the baseline", scored.errors, "examples", EXAMPLES_ERRORED)
    state.advance(1, "baseline scored on the dev split", scored.score)
    return scored.score


def _scored_before(
    state: RunState, best: BestCandidate, resumed: Sequence[Checkpoint]
) -> dict[int, Candidate]:
    """The checkpointed candidates by seed; the best of them (first of the highest, as
    DSPy picks) is the best so far, for progress and for a stop over budget."""
    scored: dict[int, Candidate] = {}
    for checkpoint in resumed:
        scored.setdefault(checkpoint.seed, Candidate(checkpoint.score, checkpoint.state))
    for seed in sorted(scored):
        candidate = scored[seed]
        state.saw_score(candidate.score)
        if best.best is None or candidate.score > best.best.score:
            best.best = candidate
    return scored


def run_evaluation(
    spec: ProgramSpec,
    *,
    metric_name: str,
    devset: list[dict[str, Any]],
    lm: dspy.BaseLM,
    state: RunState,
    errors: LMErrors,
    models: ResponseModels | None = None,
    judge: Judge | None = None,
    trace: NoTrace = NO_TRACE,
) -> Scored:
    make_progress_bars_thread_safe()
    lm, watching = watched(trace.traced_lm(lm), models)
    spec = spec.traced(trace)
    metric = _metric(metric_name, {}, spec.output_names, judge)
    dev = to_examples(devset, spec.input_names)
    if not dev:
        raise RunFailed("dataset_too_small", "the dataset has no examples to score")
    state.total = 1
    with dspy.context(
        lm=lm,
        adapter=GuardedAdapter(state),
        track_usage=True,
        usage_tracker=UsageTo(_spent(state, trace)),
        **watching,
    ):
        program = spec.program(spec.state)
        with trace.phase("score"):
            scored = _guarded(
                state, errors, lambda: score_program(program, dev, metric, num_threads=1)
            )
    if scored.errors.all_failed:
        # Nothing was measured; some errored examples are counted in the completed result.
        message = f"{scored.errors.summary('examples')}; none could be scored"
        raise RunFailed(scored.errors.most_common(), message)
    state.advance(1, "scored", scored.score)
    return scored


def _spent(state: RunState, trace: NoTrace) -> Callable[[dict[str, Any]], None]:
    """Where each LM response's usage goes: the run's spend, and its LM span if traced."""
    if trace is NO_TRACE:
        return state.add_usage

    def spent(usage: dict[str, Any]) -> None:
        state.add_usage(usage)
        record_usage(usage)

    return spent


def _config(optimizer: str, config: dict[str, Any]) -> Any:
    try:
        return parse_config(optimizer, config)
    except InvalidConfig as exc:
        raise RunFailed("invalid_config", str(exc)) from exc


def _metric(
    name: str, options: Any, output_names: Sequence[str], judge: Judge | None = None
) -> Metric | JudgeMetric:
    try:
        if judge is not None:
            threshold = judge_options(options).pass_threshold
            return JudgeMetric(replace(judge, pass_threshold=threshold))
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


@contextmanager
def _keeping_best(
    spec: ProgramSpec, state: RunState, candidates: BestCandidate, baseline: float, tally: Tally
) -> Iterator[None]:
    """A stop over budget while compiling or scoring carries the best candidate out, if
    one beat the baseline: the run keeps it as a version (``consumers.runs``)."""
    try:
        yield
    except Stopped as stop:
        best = candidates.best
        if stop.reason != BUDGET_EXCEEDED or best is None or best.score <= baseline:
            raise
        if tally.failed:
            # As for a completed run: no version is made from a run whose calls failed.
            log.warning("best candidate not kept: %s", tally.summary("LM calls"))
            raise
        problems = state_problems(spec.program(None), best.state)
        if problems:
            log.warning("best candidate not kept: %s", "; ".join(problems))
            raise
        raise Stopped(stop.reason, Optimized(best.state, baseline, best.score)) from None


def _no_failed_calls(phase: str, tally: Tally, unit: str, code: str) -> None:
    """Fail the run if calls failed in this phase: with their code when all did, else ``code``."""
    if tally.failed:
        message = f"{phase}: {tally.summary(unit)}; no version is made from a run with failed calls"
        raise RunFailed(tally.most_common() if tally.all_failed else code, message)


def _saved_state(spec: ProgramSpec, program: dspy.Module) -> dict[str, Any]:
    state = to_jsonable_python(program.dump_state(), fallback=str)
    # The version must load later; refuse to record a state our loader would reject.
    problems = state_problems(spec.program(None), state)
    if problems:
        raise RunFailed("invalid_result", "; ".join(problems))
    return dict(state)
