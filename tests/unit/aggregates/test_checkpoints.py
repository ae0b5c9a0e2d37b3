"""Checkpoints of an optimization (Optimization.CandidateScored): recorded once per
candidate while the run runs, handed to the run started again, and runs recorded before
checkpoints existed still load and start over."""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app import DspyOps, OptimizationPlan, handle, optimizations
from dspyops.events.commands import CancelOptimization, OptimizeProgram
from tests.unit.aggregates.test_application import STATE, Ids, add_dataset, register, restored

COMMAND = OptimizeProgram(
    program_id="p", dataset_id="d", optimizer="BootstrapFewShotWithRandomSearch"
)


def _checkpoint(seed: int, score: float = 0.5, lm_calls: int = 10) -> dict[str, Any]:
    return {
        "seed": seed,
        "score": score,
        "state": STATE,
        "baseline_score": 0.25,
        "spent": {"lm_calls": lm_calls, "prompt_tokens": 100, "completion_tokens": 20},
    }


def _planned(app: DspyOps, ctx: Ids) -> OptimizationPlan:
    register(app, ctx)
    add_dataset(app, ctx)
    plan = handle(app, COMMAND, ctx("o1"))
    assert isinstance(plan, OptimizationPlan)
    return plan


def test_a_run_started_again_gets_its_checkpoints_in_the_order_recorded(
    app: DspyOps, ctx: Ids
) -> None:
    first = _planned(app, ctx)
    assert first.checkpoints == []
    for seed, calls in ((-3, 5), (-2, 10), (-1, 17)):
        assert optimizations.record_checkpoint(app, "o1", **_checkpoint(seed, lm_calls=calls))

    resumed = handle(app, COMMAND, ctx("o1"))

    assert isinstance(resumed, OptimizationPlan)
    assert resumed.resumed
    assert resumed.checkpoints == [
        _checkpoint(-3, lm_calls=5),
        _checkpoint(-2, lm_calls=10),
        _checkpoint(-1, lm_calls=17),
    ]
    topics = [n.topic for n in app.recorder.select_notifications(1, 1000)]
    assert sum(t.endswith("Optimization.CandidateScored") for t in topics) == 3


def test_a_candidate_is_recorded_once(app: DspyOps, ctx: Ids) -> None:
    _planned(app, ctx)
    assert optimizations.record_checkpoint(app, "o1", **_checkpoint(0))
    # The same candidate again (a report sent twice): nothing more is recorded.
    assert not optimizations.record_checkpoint(app, "o1", **_checkpoint(0, score=0.9))
    assert app.optimization("o1").candidates[0]["score"] == 0.5


def test_a_run_that_ended_records_no_checkpoint(app: DspyOps, ctx: Ids) -> None:
    _planned(app, ctx)
    handle(app, CancelOptimization(program_id="p", optimization_id="o1"), ctx())
    assert not optimizations.record_checkpoint(app, "o1", **_checkpoint(0))
    assert app.optimization("o1").candidates == {}


def test_demo_text_an_lm_made_is_stored_repaired(app: DspyOps, ctx: Ids) -> None:
    _planned(app, ctx)
    state = {"demos": [{"question": "q", "answer": "a\x00b"}]}
    assert optimizations.record_checkpoint(app, "o1", **{**_checkpoint(0), "state": state})
    stored = app.optimization("o1").candidates[0]["state"]
    assert "\x00" not in stored["demos"][0]["answer"]


def test_a_run_recorded_before_checkpoints_loads_and_starts_over(app: DspyOps, ctx: Ids) -> None:
    _planned(app, ctx)
    stored = next(
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("Optimization.Requested")
    )
    state = app.mapper.transcoder.decode(stored.state)
    # The oldest Requested this class ever wrote (version 1), and no checkpoint after it.
    state["class_version"] = 1
    for added in ("payload_digest", "budget", "dataset_version", "judge"):
        del state[added]
    old = restored(app, stored, state).mutate(None)
    assert old.candidates == {}
    resumed = handle(app, COMMAND, ctx("o1"))
    assert isinstance(resumed, OptimizationPlan)
    assert resumed.resumed
    assert resumed.checkpoints == []
