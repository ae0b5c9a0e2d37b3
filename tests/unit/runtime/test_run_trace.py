"""A run's DSPy calls recorded per phase (runtime.run_trace), without Kafka or OpenTelemetry:
each program call's tree handed on when it ends, with its predictor and LM call, and a
phase keeping at most its limit of spans, counting the rest."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from dspyops.runtime.optimize import run_evaluation, run_optimization
from dspyops.runtime.run_state import RunState
from dspyops.runtime.run_trace import NO_TRACE, NoTrace, RunTrace
from tests.support.optimization import few_shot_lm
from tests.unit.runtime.test_optimize import DEV, ERRORS, SPEC, TRAIN


class Phases:
    """Stands for the worker's spans: each phase's attributes and the trees emitted in it."""

    def __init__(self) -> None:
        self.attributes: dict[str, dict[str, Any]] = {}
        self.trees: dict[str, list[dict[str, Any]]] = {}
        self._open: str | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[Any]:
        details = type("Details", (), {"attributes": self.attributes.setdefault(name, {})})()
        self._open = name
        try:
            yield details
        finally:
            self._open = None

    def emit(self, tree: dict[str, Any], started_ns: int) -> None:
        assert self._open is not None
        assert started_ns > 0
        self.trees.setdefault(self._open, []).append(tree)


def _in_thread(work: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def _evaluate(trace: NoTrace, lm: Any = None) -> Any:
    """The evaluation run, in a thread of its own as the worker runs it."""
    return _in_thread(
        lambda: run_evaluation(
            SPEC,
            metric_name="exact_match",
            devset=DEV,
            lm=lm or few_shot_lm(),
            state=RunState(60),
            errors=ERRORS,
            trace=trace,
        )
    )


def test_an_evaluation_emits_a_program_span_per_example_with_its_lm_call() -> None:
    phases = Phases()
    trace = RunTrace(stage=phases.stage, emit=phases.emit)
    _evaluate(trace, few_shot_lm(usage=(30, 7)))
    assert list(phases.trees) == ["score"]
    trees = phases.trees["score"]
    assert len(trees) == len(DEV)
    for tree in trees:
        assert (tree["kind"], tree["name"]) == ("program", "program")
        (lm_span,) = tree["children"]
        assert lm_span["kind"] == "lm"
        assert lm_span["usage"]["total_tokens"] == 37
    assert phases.attributes["score"] == {
        "dspyops.spans.kept": 2 * len(DEV),
        "dspyops.spans.dropped": 0,
    }


def test_an_optimization_keeps_at_most_the_limit_of_spans_per_phase() -> None:
    phases = Phases()
    limit = 5
    trace = RunTrace(stage=phases.stage, emit=phases.emit, limit=limit)
    state = RunState(60)
    config = {"max_bootstrapped_demos": 2, "max_labeled_demos": 1}
    result = _in_thread(
        lambda: run_optimization(
            SPEC,
            optimizer="BootstrapFewShot",
            metric_name="exact_match",
            config=config,
            trainset=TRAIN,
            devset=DEV,
            lm=few_shot_lm(),
            state=state,
            errors=ERRORS,
            trace=trace,
        )
    )
    assert (result.baseline_score, result.optimized_score) == (0.0, 1.0)
    assert list(phases.attributes) == ["baseline", "compile", "optimized"]
    # Every scored example is a program call and its LM call: two spans each, five kept.
    for phase in ("baseline", "optimized"):
        assert phases.attributes[phase] == {
            "dspyops.spans.kept": limit,
            "dspyops.spans.dropped": 2 * len(DEV) - limit,
        }
        # Two whole calls and the third's program span, its LM call dropped.
        assert [len(tree["children"]) for tree in phases.trees[phase]] == [1, 1, 0]
    # The teacher's two bootstrapped examples (the deep copies optimizers make trace too).
    assert phases.attributes["compile"] == {"dspyops.spans.kept": 4, "dspyops.spans.dropped": 0}
    assert [len(tree["children"]) for tree in phases.trees["compile"]] == [1, 1]
    # What a run spent is counted in full, traced or not.
    assert state.lm_calls >= 2 * len(DEV)


def _spans(tree: dict[str, Any]) -> int:
    return 1 + sum(_spans(child) for child in tree["children"])


def test_calls_from_dspys_worker_threads_are_counted_once_and_kept_within_the_limit() -> None:
    phases = Phases()
    limit = 40
    trace = RunTrace(stage=phases.stage, emit=phases.emit, limit=limit)
    state = RunState(60)
    config = {"num_candidate_programs": 2, "num_threads": 4}
    _in_thread(
        lambda: run_optimization(
            SPEC,
            optimizer="BootstrapFewShotWithRandomSearch",
            metric_name="exact_match",
            config=config,
            trainset=TRAIN,
            devset=DEV,
            lm=few_shot_lm(delay_s=0.005),
            state=state,
            errors=ERRORS,
            trace=trace,
        )
    )
    counted = {name: attributes.values() for name, attributes in phases.attributes.items()}
    # Every LM call is a program span and an LM span, kept or dropped, counted once.
    assert sum(sum(pair) for pair in counted.values()) == 2 * state.lm_calls
    compiled = phases.attributes["compile"]
    assert compiled["dspyops.spans.kept"] == limit
    assert compiled["dspyops.spans.dropped"] > 0
    # What was emitted is what was kept.
    for name, attributes in phases.attributes.items():
        emitted = sum(_spans(tree) for tree in phases.trees.get(name, []))
        assert emitted == attributes["dspyops.spans.kept"], name


def test_spans_that_cannot_be_emitted_do_not_fail_the_run() -> None:
    def broken(tree: dict[str, Any], started_ns: int) -> None:
        raise ValueError("the exporter is broken")

    phases = Phases()
    clean = _evaluate(RunTrace(stage=phases.stage, emit=broken))
    untraced = _evaluate(NO_TRACE)
    assert clean.per_example == untraced.per_example
    assert all(example["outputs"] for example in clean.per_example)
