"""Optimization and evaluation runs without Kafka: each optimizer, stops, and failures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy
import pytest
from dspy.lm15 import Request

from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.modules import build_module
from dspyops.runtime.offline import OfflineLM
from dspyops.runtime.optimize import (
    ProgramSpec,
    run_evaluation,
    run_optimization,
)
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.run_state import (
    CANCELLED,
    TIME_LIMIT_EXCEEDED,
    RunFailed,
    RunState,
    Stopped,
)
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature
from tests.support.optimization import EXAMPLES, few_shot_lm, few_shot_reply
from tests.support.scripted_lm import ScriptedLM

COMPILED = compile_signature("question: str -> answer: str")
SPEC = ProgramSpec(
    dspy_signature(COMPILED), "Predict", None, COMPILED.input_names, COMPILED.output_names
)
TRAIN, DEV = EXAMPLES[:12], EXAMPLES[12:]

# Failures told as the worker tells them, with nothing configured to redact.
ERRORS = LMErrors("test", Redactor())


def _optimize(optimizer: str, config: dict[str, Any], lm: dspy.BaseLM, **kw: Any) -> Any:
    state = kw.pop("state", RunState(60))
    return run_optimization(
        SPEC,
        optimizer=optimizer,
        metric_name=kw.pop("metric", "exact_match"),
        config=config,
        trainset=kw.pop("trainset", TRAIN),
        devset=DEV,
        lm=lm,
        state=state,
        errors=ERRORS,
    )


@pytest.mark.parametrize(
    ("optimizer", "config"),
    [
        ("LabeledFewShot", {"k": 2}),
        # The teacher needs a labelled demo before this LM answers right.
        ("BootstrapFewShot", {"max_bootstrapped_demos": 2, "max_labeled_demos": 1}),
        ("BootstrapFewShotWithRandomSearch", {"num_candidate_programs": 2}),
    ],
)
def test_few_shot_optimizers_add_demos_that_lift_the_score(
    optimizer: str, config: dict[str, Any]
) -> None:
    state = RunState(60)
    # In a worker thread, as in the worker: DSPy is configured by dspy.context only.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(_optimize, optimizer, config, few_shot_lm(), state=state).result()
    assert (result.baseline_score, result.optimized_score) == (0.0, 1.0)
    assert result.state["demos"]
    module = build_module("Predict", dspy_signature(COMPILED), result.state)
    assert len(module.demos) == len(result.state["demos"])
    assert [s[0] for s in state.finished] == [1, 2, 3]
    assert state.finished[-1][2] == 1.0


def test_mipro_v2_light_and_gepa_run_and_give_a_loadable_state() -> None:
    lm = OfflineLM()
    # optuna is a dependency: MIPROv2 always runs here, a broken install fails the test.
    runs: list[tuple[str, dict[str, Any]]] = [
        ("GEPA", {"max_metric_calls": 20}),
        ("MIPROv2", {"auto": "light"}),
    ]
    for optimizer, config in runs:
        result = _optimize(optimizer, config, lm, metric="f1")
        build_module("Predict", dspy_signature(COMPILED), result.state)
        assert 0.0 <= result.optimized_score <= 1.0


def test_a_cancel_during_the_run_stops_it() -> None:
    state = RunState(60)
    calls = 0

    def reply(request: Request) -> str:
        nonlocal calls
        calls += 1
        if calls == 10:
            state.stop(CANCELLED)
        return few_shot_reply(request)

    config = {"num_candidate_programs": 16}
    with pytest.raises(Stopped) as stopped:
        _optimize("BootstrapFewShotWithRandomSearch", config, ScriptedLM(reply), state=state)
    assert stopped.value.reason == CANCELLED
    assert calls < 20  # no LM call after the stop, bar those already under way


def test_the_time_limit_stops_a_slow_run() -> None:
    state = RunState(0.3)
    with pytest.raises(Stopped) as stopped:
        _optimize("BootstrapFewShot", {}, few_shot_lm(delay_s=0.05), state=state)
    assert stopped.value.reason == TIME_LIMIT_EXCEEDED


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"trainset": []}, "dataset_too_small"),
        ({"metric": "bleu"}, "unknown_metric"),
        ({"metric": "exact_match:nope"}, "invalid_metric_options"),
    ],
)
def test_runs_that_cannot_start_fail_with_a_code(kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(RunFailed) as failed:
        _optimize("LabeledFewShot", {}, few_shot_lm(), **kwargs)
    assert failed.value.code == code


def test_an_lm_that_fails_every_call_fails_the_run_with_the_lm_code() -> None:
    lm = ScriptedLM("not the format at all")
    with pytest.raises(RunFailed) as failed:
        _optimize("BootstrapFewShot", {"max_errors": 1}, lm)
    assert failed.value.code == "output_parse_error"


def test_evaluation_scores_each_example() -> None:
    scored = run_evaluation(
        SPEC,
        metric_name="exact_match",
        devset=DEV,
        lm=few_shot_lm(),
        state=RunState(60),
        errors=ERRORS,
    )
    assert scored.score == 0.0
    assert [e["index"] for e in scored.per_example] == list(range(len(DEV)))
    assert scored.per_example[0]["outputs"] == {"answer": "I do not know"}
