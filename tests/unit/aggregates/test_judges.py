"""Judge programs as metrics, in the domain: the input mapping, the refusals, the pin."""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates.app import DspyOps, EvaluationPlan, OptimizationPlan, handle, optimizations
from dspyops.aggregates.app.judges import bind_inputs, judge_name, sampled, score_range
from dspyops.aggregates.app.plans import ExecutionPlan, GatePlan
from dspyops.events.commands import (
    DeployProgram,
    DeprecateProgram,
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    PromotionGate,
    RegisterDataset,
    RegisterProgram,
    SetAlias,
    SetOnlineEvaluation,
)
from dspyops.signatures import compile_signature
from tests.unit.aggregates.test_application import Ids, program_from_older_snapshot, restored

QA = "question: str -> answer: str"
GRADER = "question: str, answer: str, reference: str -> score: float[0, 1], rationale: str"
EXAMPLES = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]


def _sig(text: str) -> Any:
    return compile_signature(text)


def _setup(app: DspyOps, ctx: Ids, grader: str = GRADER) -> None:
    for program_id, signature in (("qa", QA), ("grader", grader)):
        outcome = handle(
            app, RegisterProgram(program_id=program_id, name=program_id, signature=signature), ctx()
        )
        assert outcome.result_type == "ProgramRegistered", outcome
    handle(app, RegisterDataset(dataset_id="d", name="d", examples=EXAMPLES), ctx())


def optimized(app: DspyOps, ctx: Ids, program_id: str) -> None:
    """Version 2 of `program_id` (which must be `qa` or `grader`), by an optimization."""
    example: dict[str, Any] = {"question": "q", "answer": "a"}
    if program_id == "grader":
        example |= {"reference": "a", "score": 1.0, "rationale": "right"}
    handle(app, RegisterDataset(dataset_id=f"d-{program_id}", name="d", examples=[example]), ctx())
    plan = handle(app, OptimizeProgram(program_id=program_id, dataset_id=f"d-{program_id}"), ctx())
    assert isinstance(plan, OptimizationPlan), plan
    outcome = optimizations.complete_optimization(
        app, plan.optimization_id, state={}, baseline_score=0.4, optimized_score=0.8
    )
    assert outcome.result_type == "OptimizationCompleted", outcome


def _refusal(outcome: Any) -> list[dict[str, Any]]:
    assert outcome.result_type == "CommandRejected", outcome
    errors: list[dict[str, Any]] = outcome.data["errors"]
    return errors


def test_a_judge_metric_names_a_program_and_maybe_an_alias() -> None:
    bare = judge_name("judge:grader")
    assert bare is not None
    assert (bare.program_id, bare.alias) == ("grader", None)
    name = judge_name("judge:grader@production")
    assert name is not None
    assert (name.program_id, name.alias) == ("grader", "production")
    assert judge_name("exact_match") is None


def test_judge_inputs_are_bound_by_name_and_the_reference_to_the_one_label() -> None:
    bindings, errors = bind_inputs(_sig(GRADER), _sig(QA))
    assert errors == []
    assert bindings == {
        "question": ["input", "question"],
        "answer": ["output", "answer"],
        "reference": ["label", "answer"],
    }


def test_reference_names_an_output_when_the_judged_program_has_several() -> None:
    judged = _sig("question: str -> answer: str, source: str")
    judge = _sig("answer: str, gold_answer: str, reference_source: str -> score: int[1, 5]")
    bindings, errors = bind_inputs(judge, judged)
    assert errors == []
    assert bindings["gold_answer"] == ["label", "answer"]
    assert bindings["reference_source"] == ["label", "source"]
    # A bare `reference` is ambiguous with two outputs: refused.
    _, errors = bind_inputs(_sig("answer: str, reference: str -> score: float[0, 1]"), judged)
    assert [(e["loc"], e["type"]) for e in errors] == [(["metric"], "judge_input_unbound")]
    assert "reference" in errors[0]["msg"]


@pytest.mark.parametrize(
    ("judge", "code"),
    [
        ("answer: str -> verdict: float[0, 1]", "judge_no_score"),
        ("answer: str -> score: str", "judge_score_type"),
        ("answer: str -> score: float", "judge_score_unbounded"),
    ],
)
def test_a_judge_needs_a_numeric_score_with_a_range(judge: str, code: str) -> None:
    bounds, errors = score_range(_sig(judge))
    assert bounds is None
    assert [(e["loc"], e["type"]) for e in errors] == [(["metric"], code)]


def test_a_score_range_other_than_0_1_is_kept_for_normalising() -> None:
    assert score_range(_sig("answer: str -> score: int[1, 5]")) == ((1.0, 5.0), [])


def test_an_evaluation_with_a_judge_plans_the_judge_pinned_at_the_alias(
    app: DspyOps, ctx: Ids
) -> None:
    _setup(app, ctx)
    optimized(app, ctx, "grader")  # version 2 of the grader
    handle(app, SetAlias(program_id="grader", alias="stable", version=1), ctx())

    plan = handle(
        app, EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:grader@stable"), ctx()
    )

    assert isinstance(plan, EvaluationPlan), plan
    assert plan.judge is not None
    assert (plan.judge.program_id, plan.judge.version, plan.judge.alias) == ("grader", 1, "stable")
    assert plan.judge.bindings["reference"] == ["label", "answer"]
    assert (plan.judge.score_low, plan.judge.score_high, plan.judge.rationale) == (
        0.0,
        1.0,
        "rationale",
    )
    run = app.evaluation(plan.evaluation_id)
    assert run.judge == {"program_id": "grader", "version": 1, "alias": "stable"}
    # The alias moves; the run, planned again (a redelivery), keeps its judge version.
    handle(app, SetAlias(program_id="grader", alias="stable", version=2), ctx())
    command = EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:grader@stable")
    again = handle(app, command, ctx(run.command_id))
    assert isinstance(again, EvaluationPlan)
    assert again.resumed
    assert again.judge is not None
    assert again.judge.version == 1


def test_without_an_alias_the_judge_is_its_latest_version_when_none_serves(
    app: DspyOps, ctx: Ids
) -> None:
    _setup(app, ctx)
    optimized(app, ctx, "grader")
    plan = handle(
        app,
        OptimizeProgram(program_id="qa", dataset_id="d", metric="judge:grader"),
        ctx(),
    )
    assert isinstance(plan, OptimizationPlan), plan
    assert plan.judge is not None
    assert (plan.judge.version, plan.judge.alias) == (2, None)
    assert app.optimization(plan.optimization_id).judge == {
        "program_id": "grader",
        "version": 2,
        "alias": None,
    }


@pytest.mark.parametrize(
    ("metric", "code"),
    [
        ("judge:nobody", "unknown_judge"),
        ("judge:grader@nowhere", "unknown_judge"),
        ("judge:", "missing"),
    ],
)
def test_a_judge_that_is_not_there_is_refused_on_metric(
    app: DspyOps, ctx: Ids, metric: str, code: str
) -> None:
    _setup(app, ctx)
    for command in (
        EvaluateProgram(program_id="qa", dataset_id="d", metric=metric),
        OptimizeProgram(program_id="qa", dataset_id="d", metric=metric),
    ):
        errors = _refusal(handle(app, command, ctx()))
        assert [(e["loc"], e["type"]) for e in errors] == [(["metric"], code)]


def test_a_deprecated_judge_is_refused(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx)
    optimized(app, ctx, "grader")
    handle(app, DeprecateProgram(program_id="grader"), ctx())
    errors = _refusal(
        handle(app, EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:grader"), ctx())
    )
    assert [(e["loc"], e["type"]) for e in errors] == [(["metric"], "judge_deprecated")]


def test_a_judge_whose_inputs_cannot_be_filled_is_refused(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx, grader="essay: str -> score: float[0, 1]")
    errors = _refusal(
        handle(app, EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:grader"), ctx())
    )
    assert [(e["loc"], e["type"]) for e in errors] == [(["metric"], "judge_input_unbound")]
    assert "essay" in errors[0]["msg"]


def test_a_gate_can_judge_and_pins_one_judge_version_for_its_runs(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx)
    optimized(app, ctx, "qa")
    handle(app, DeployProgram(program_id="qa", version=1), ctx())
    gate = PromotionGate(dataset_id="d", metric="judge:grader", split="all")
    plan = handle(app, DeployProgram(program_id="qa", version=2, gate=gate), ctx("deploy-1"))
    assert isinstance(plan, GatePlan), plan
    assert [run.judge.version if run.judge else None for run in plan.runs] == [1, 1]
    bad = PromotionGate(dataset_id="d", metric="judge:nobody", split="all")
    errors = _refusal(handle(app, DeployProgram(program_id="qa", version=2, gate=bad), ctx()))
    assert [(e["loc"], e["type"]) for e in errors] == [(["gate", "metric"], "unknown_judge")]


def test_a_run_requested_before_judges_loads_without_one(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx)
    handle(app, EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:grader"), ctx())
    stored = next(
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("Evaluation.Requested")
    )
    state = app.mapper.transcoder.decode(stored.state)
    assert (state["class_version"], state["judge"]["program_id"]) == (6, "grader")
    state["class_version"] = 5
    del state["judge"]
    assert restored(app, stored, state).mutate(None).judge is None


# --- online evaluation ---------------------------------------------------------------

ONLINE_GRADER = "question: str, answer: str -> score: float[0, 1], rationale: str"


def test_sampling_is_deterministic_by_execution_id_and_near_the_percent() -> None:
    ids = [f"exec-{n}" for n in range(4000)]
    picked = [i for i in ids if sampled(i, 25.0)]
    assert picked == [i for i in ids if sampled(i, 25.0)]
    assert 900 < len(picked) < 1100
    assert all(sampled(i, 100.0) for i in ids[:50])
    # A larger sample keeps the smaller one's executions.
    assert set(picked) <= {i for i in ids if sampled(i, 50.0)}


def test_online_evaluation_picks_executions_and_plans_their_judge(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx, grader=ONLINE_GRADER)
    outcome = handle(
        app,
        SetOnlineEvaluation(program_id="qa", judge="grader", sample_percent=50, reason="watch"),
        ctx(),
    )
    assert outcome.result_type == "OnlineEvaluationSet", outcome
    assert (outcome.data["judge"], outcome.data["sample_percent"]) == ("grader", 50.0)
    assert app.program("qa").online_evaluation == {
        "judge": "grader",
        "alias": None,
        "sample_percent": 50.0,
    }
    plans = [
        handle(app, ExecuteProgram(program_id="qa", inputs={"question": "q"}), ctx(f"x{n}"))
        for n in range(40)
    ]
    judged = [p for p in plans if isinstance(p, ExecutionPlan) and p.judge is not None]
    assert [p.execution_id for p in judged] == [
        p.execution_id
        for p in plans
        if isinstance(p, ExecutionPlan) and sampled(p.execution_id, 50)
    ]
    assert judged
    assert judged[0].judge is not None
    assert judged[0].judge.bindings == {
        "question": ["input", "question"],
        "answer": ["output", "answer"],
    }
    # Stopped: no execution is judged.
    handle(app, SetOnlineEvaluation(program_id="qa", judge=None), ctx())
    assert app.program("qa").online_evaluation is None
    again = handle(app, ExecuteProgram(program_id="qa", inputs={"question": "q"}), ctx())
    assert isinstance(again, ExecutionPlan)
    assert again.judge is None


def test_an_online_judge_that_needs_labels_is_refused_on_judge(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx)  # GRADER needs `reference`, a label
    errors = _refusal(handle(app, SetOnlineEvaluation(program_id="qa", judge="grader"), ctx()))
    assert [(e["loc"], e["type"]) for e in errors] == [(["judge"], "judge_input_unbound")]
    errors = _refusal(handle(app, SetOnlineEvaluation(program_id="qa", judge="nobody"), ctx()))
    assert [(e["loc"], e["type"]) for e in errors] == [(["judge"], "unknown_judge")]


def test_a_program_snapshot_from_before_online_evaluation_loads(app: DspyOps, ctx: Ids) -> None:
    _setup(app, ctx, grader=ONLINE_GRADER)
    handle(app, SetOnlineEvaluation(program_id="qa", judge="grader"), ctx())
    program = program_from_older_snapshot(app, "qa", 8, "online_evaluation")
    assert program.online_evaluation is None
