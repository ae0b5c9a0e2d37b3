"""The random search made candidate by candidate gives what DSPy's own
BootstrapFewShotWithRandomSearch gives, fresh and resumed from any checkpoint."""

from __future__ import annotations

from typing import Any

import dspy
import pytest

from dspyops.runtime.candidates import Candidate
from dspyops.runtime.modules import build_module
from dspyops.runtime.random_search import Checkpoints, from_percent, search, to_percent
from dspyops.runtime.scoring import build_metric
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature
from tests.support.optimization import EXAMPLES, same_operand_reply
from tests.support.scripted_lm import ScriptedLM

COMPILED = compile_signature("question: str -> answer: str")
SIGNATURE = dspy_signature(COMPILED)
# Every first number is in both splits: a demo can help each dev question.
TRAIN = [dspy.Example(**e).with_inputs("question") for e in EXAMPLES if e not in EXAMPLES[2::3]]
DEV = [dspy.Example(**e).with_inputs("question") for e in EXAMPLES[2::3]]
METRIC = build_metric("exact_match", {}, ["answer"])
CONFIG: dict[str, Any] = {
    "max_bootstrapped_demos": 4,
    "max_labeled_demos": 4,
    "num_candidate_programs": 6,
    "num_threads": 1,
}


def _optimizer(**config: Any) -> dspy.BootstrapFewShotWithRandomSearch:
    return dspy.BootstrapFewShotWithRandomSearch(metric=METRIC, **{**CONFIG, **config})


def _student() -> dspy.Module:
    return build_module("Predict", SIGNATURE, None)


def _rebuild(state: dict[str, Any]) -> dspy.Module:
    return build_module("Predict", SIGNATURE, state)


def _dspy_search(**config: Any) -> tuple[dict[str, Any], dict[int, float], int]:
    """DSPy's own compile: the best program's state, each seed's score, the LM calls."""
    lm = ScriptedLM(same_operand_reply)
    with dspy.context(lm=lm):
        best = _optimizer(**config).compile(_student(), trainset=TRAIN, valset=DEV)
    scores = {c["seed"]: from_percent(c["score"]) for c in best.candidate_programs}
    return best.dump_state(), scores, len(lm.engine_state.requests)


def _our_search(
    scored: dict[int, Candidate] | None = None, **config: Any
) -> tuple[dict[str, Any], list[tuple[int, Candidate]], int]:
    """Ours: the best program's state, the candidates told (in order), the LM calls."""
    told: list[tuple[int, Candidate]] = []
    lm = ScriptedLM(same_operand_reply)
    checkpoints = Checkpoints(scored or {}, lambda s, c: told.append((s, c)), _rebuild)
    with dspy.context(lm=lm):
        best = search(
            _optimizer(**config), _student(), trainset=TRAIN, valset=DEV, checkpoints=checkpoints
        )
    return best.dump_state(), told, len(lm.engine_state.requests)


@pytest.fixture(scope="module")
def fresh() -> tuple[dict[str, Any], list[tuple[int, Candidate]], int]:
    return _our_search()


def test_a_fresh_search_equals_dspys_random_search(
    fresh: tuple[dict[str, Any], list[tuple[int, Candidate]], int],
) -> None:
    state, told, calls = fresh
    dspy_state, dspy_scores, dspy_calls = _dspy_search()
    assert state == dspy_state
    assert [seed for seed, _ in told] == list(range(-3, 6))
    assert {seed: c.score for seed, c in told} == dspy_scores
    assert calls == dspy_calls
    # The LM makes the candidates differ, so the choice of the best is really tested.
    assert len({c.score for _, c in told}) >= 2
    assert any(c.state["demos"] for _, c in told)


def _first_best(told: list[tuple[int, Candidate]]) -> int:
    """Where DSPy's best is: the first of the highest scores."""
    scores = [c.score for _, c in told]
    return scores.index(max(scores))


@pytest.mark.parametrize("where", ["best checkpointed", "best made after the restart"])
def test_a_search_resumed_from_checkpoints_makes_only_the_rest_and_ends_the_same(
    fresh: tuple[dict[str, Any], list[tuple[int, Candidate]], int], where: str
) -> None:
    state, told, calls = fresh
    best = _first_best(told)
    kept = best + 1 if where == "best checkpointed" else best
    assert 0 < kept < len(told), "the scripted LM must leave candidates on both sides"
    resumed_state, resumed_told, resumed_calls = _our_search(dict(told[:kept]))
    assert resumed_state == state
    assert resumed_told == told[kept:]
    assert resumed_calls < calls


def test_every_candidate_checkpointed_makes_no_call_and_rebuilds_the_best(
    fresh: tuple[dict[str, Any], list[tuple[int, Candidate]], int],
) -> None:
    state, told, _ = fresh
    resumed_state, resumed_told, resumed_calls = _our_search(dict(told))
    assert (resumed_state, resumed_told, resumed_calls) == (state, [], 0)


def test_stop_at_score_stops_where_dspys_does(
    fresh: tuple[dict[str, Any], list[tuple[int, Candidate]], int],
) -> None:
    _, told, _ = fresh
    stop = max(c.score for _, c in told)
    dspy_state, dspy_scores, _ = _dspy_search(stop_at_score=stop * 100)
    state, stopped_told, _ = _our_search(stop_at_score=stop * 100)
    assert state == dspy_state
    seeds = [s for s, _ in stopped_told]
    assert seeds == sorted(dspy_scores) == [s for s, _ in told][: len(dspy_scores)]
    assert len(stopped_told) < len(told)


def test_scores_go_to_our_scale_and_back_to_the_percentage_dspy_compared() -> None:
    for hundredths in range(10001):
        percent = round(hundredths / 100, 2)
        assert to_percent(from_percent(percent)) == percent
