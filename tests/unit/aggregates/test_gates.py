"""A gated DeployProgram on the in-memory store: two evaluation runs, then one outcome.

Production moves only when the candidate scored at least the production version's score
plus `min_delta`; a refusal leaves production where it was and says why, with both
scores and both runs; a redelivery mid-gate reuses the runs that ended.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dspyops.aggregates.app import (
    DspyOps,
    GatePlan,
    OptimizationPlan,
    Outcome,
    evaluations,
    finish_gate,
    handle,
    optimizations,
)
from dspyops.aggregates.app.gates import gate_run_id
from dspyops.aggregates.errors import NotFound
from dspyops.events.commands import (
    CancelGate,
    DeployProgram,
    OptimizeProgram,
    PromotionGate,
    RegisterDataset,
)
from dspyops.events.results import DeploymentRefused, ProgramDeployed
from dspyops.events.topics import Topics, command_topic
from tests.unit.aggregates.test_application import (
    Ids,
    add_dataset,
    log_length,
    optimized,
    register,
    restored,
    topics_since,
)


def deployed_v1(app: DspyOps, ctx: Ids) -> None:
    """Program p with v1 in production and an optimized v2 waiting; dataset d."""
    register(app, ctx)
    assert optimized(app, ctx).result_type == "OptimizationCompleted"
    handle(app, DeployProgram(program_id="p", version=1), ctx())
    add_dataset(app, ctx)
    assert app.program("p").deployed_version == 1


def gated(version: int = 2, **gate: Any) -> DeployProgram:
    return DeployProgram(
        program_id="p", version=version, gate=PromotionGate(dataset_id="d", **gate)
    )


def score(app: DspyOps, plan: GatePlan, **scores: float) -> None:
    """End the plan's runs as the worker would, `scores` by role; a missing role fails."""
    for run in plan.runs:
        role = app.evaluation(run.evaluation_id).gate["role"]  # type: ignore[index]
        if role in scores:
            per_example = [{"index": i, "score": scores[role]} for i in range(len(run.devset))]
            evaluations.complete_evaluation(app, run.evaluation_id, scores[role], per_example)
        else:
            evaluations.fail_evaluation(app, run.evaluation_id, "lm_error", "the LM is down")


def gate_through(
    app: DspyOps, ctx: Ids, command: DeployProgram, command_id: str = "deploy-1", **scores: float
) -> Outcome:
    plan = handle(app, command, ctx(command_id))
    assert isinstance(plan, GatePlan), plan
    score(app, plan, **scores)
    return finish_gate(app, plan)


def test_a_passing_gate_deploys_and_reports_both_scores(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    outcome = gate_through(app, ctx, gated(min_delta=0.1), candidate=0.9, current=0.5)

    assert outcome.result_type == "ProgramDeployed", outcome
    result = ProgramDeployed.model_validate(outcome.data)
    assert (result.version, result.deployed_version) == (2, 2)
    assert result.gate is not None
    assert (result.gate.candidate_score, result.gate.current_score) == (0.9, 0.5)
    assert (result.gate.candidate_version, result.gate.current_version) == (2, 1)
    assert result.gate.candidate_evaluation_id == gate_run_id("deploy-1", "candidate")
    assert result.gate.current_evaluation_id == gate_run_id("deploy-1", "current")
    assert app.program("p").deployed_version == 2
    assert app.stored_outcome("deploy-1") == outcome


def test_a_refused_gate_leaves_production_untouched_and_says_why(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(min_delta=0.05), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    assert len(plan.runs) == 2
    score(app, plan, candidate=0.5, current=0.6)
    # The runs ended, but the gated command has no outcome until it is judged.
    assert app.stored_outcome("deploy-1") is None
    start = log_length(app)

    outcome = finish_gate(app, plan)

    assert outcome.result_type == "DeploymentRefused", outcome
    refused = DeploymentRefused.model_validate(outcome.data)
    assert (refused.version, refused.deployed_version, refused.status) == (2, 1, "deployed")
    assert refused.error.code == "gate_not_passed"
    assert "scored 0.5" in refused.error.message
    assert "at least 0.65" in refused.error.message
    assert (refused.gate.candidate_score, refused.gate.current_score) == (0.5, 0.6)
    assert refused.gate.min_delta == 0.05
    program = app.program("p")
    assert (program.deployed_version, program.aliases["production"]) == (1, 1)
    # The audit trail shows the refusal: a Program event and the command's outcome.
    assert topics_since(app, start) == ["DeploymentRefused", "Handled"]
    (stored,) = [
        n
        for n in app.recorder.select_notifications(start + 1, 10)
        if n.topic.endswith("Program.DeploymentRefused")
    ]
    facts = app.mapper.transcoder.decode(stored.state)
    assert (facts["version"], facts["deployed_version"], facts["code"]) == (
        2,
        1,
        "gate_not_passed",
    )
    assert facts["gate"]["candidate_score"] == 0.5
    # Redelivered, it answers the same and records nothing.
    again = handle(app, gated(min_delta=0.05), ctx("deploy-1"))
    assert again == outcome
    assert log_length(app) == start + 2


@pytest.mark.parametrize(
    ("candidate", "current", "min_delta", "deploys"),
    [
        (0.7, 0.6, 0.1, True),  # exactly the delta, though 0.6 + 0.1 > 0.7 in floats
        (0.69, 0.6, 0.1, False),
        (0.5, 0.5, 0.0, True),  # as good as production passes a zero delta
        (0.45, 0.5, -0.05, True),  # a negative delta tolerates a small loss
        (0.44, 0.5, -0.05, False),
    ],
)
def test_the_candidate_needs_current_plus_min_delta(
    app: DspyOps, ctx: Ids, candidate: float, current: float, min_delta: float, deploys: bool
) -> None:
    deployed_v1(app, ctx)
    outcome = gate_through(
        app, ctx, gated(min_delta=min_delta), candidate=candidate, current=current
    )
    assert outcome.result_type == ("ProgramDeployed" if deploys else "DeploymentRefused")
    assert app.program("p").deployed_version == (2 if deploys else 1)


def test_without_a_production_version_a_gate_is_refused_before_any_run(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    outcome = handle(app, gated(version=1), ctx("deploy-1"))
    assert isinstance(outcome, Outcome)
    assert outcome.result_type == "CommandRejected"
    (error,) = outcome.data["errors"]
    assert error["loc"] == ["gate"]
    assert "no production version" in error["msg"]
    with pytest.raises(NotFound):
        app.evaluation(gate_run_id("deploy-1", "candidate"))
    assert app.program("p").deployed_version is None


def test_a_gate_is_checked_before_its_runs_start(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    example = {"question": "q", "context": "c", "answer": "a", "confidence": 1.0}
    no_dev = RegisterDataset(dataset_id="no-dev", name="n", examples=[example], dev_fraction=0.0)
    handle(app, no_dev, ctx())
    cases = {
        "serving": (gated(version=1), ["version"]),
        "no-version": (gated(version=9), ["version"]),
        "no-dataset": (
            DeployProgram(program_id="p", version=2, gate=PromotionGate(dataset_id="nope")),
            ["gate", "dataset_id"],
        ),
        "empty-split": (
            DeployProgram(program_id="p", version=2, gate=PromotionGate(dataset_id="no-dev")),
            ["gate", "split"],
        ),
        "no-metric": (gated(metric=" "), ["gate", "metric"]),
    }
    for name, (command, loc) in cases.items():
        outcome = handle(app, command, ctx(name))
        assert isinstance(outcome, Outcome), name
        assert outcome.result_type == "CommandRejected", (name, outcome)
        assert outcome.data["errors"][0]["loc"] == loc, (name, outcome)
        with pytest.raises(NotFound):
            app.evaluation(gate_run_id(name, "candidate"))


def test_a_redelivered_gate_reuses_the_runs_that_ended(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    candidate, current = plan.runs
    per_example = [{"index": 0, "score": 1.0}]
    evaluations.complete_evaluation(app, candidate.evaluation_id, 1.0, per_example)
    # The worker died while the current version was being scored: the command comes again.
    resumed = handle(app, gated(), ctx("deploy-1"))
    assert isinstance(resumed, GatePlan)
    assert resumed.resumed
    assert [run.evaluation_id for run in resumed.runs] == [current.evaluation_id]
    evaluations.complete_evaluation(app, current.evaluation_id, 0.5, per_example)
    outcome = finish_gate(app, resumed)
    assert outcome.result_type == "ProgramDeployed"
    assert outcome.data["gate"]["candidate_score"] == 1.0
    # The same id with another gate is another command: refused, nothing recorded.
    other = handle(app, gated(min_delta=0.5), ctx("deploy-1"))
    assert isinstance(other, Outcome)
    assert other.result_type == "CommandRejected", other
    assert other.data["errors"][0]["type"] == "id_reused"


def test_a_failed_run_refuses_the_deploy(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    outcome = gate_through(app, ctx, gated(), candidate=0.9)  # the current run fails
    assert outcome.result_type == "DeploymentRefused"
    assert outcome.data["error"]["code"] == "gate_evaluation_failed"
    assert "the LM is down" in outcome.data["error"]["message"]
    assert outcome.data["gate"]["current_score"] is None
    assert app.program("p").deployed_version == 1


def test_production_moved_while_the_gate_ran_refuses_the_deploy(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(version=2), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    # v3: so that v2's gate is compared with a production that is no longer v1.
    plan3 = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx())
    assert isinstance(plan3, OptimizationPlan)
    optimizations.complete_optimization(
        app, plan3.optimization_id, state={}, baseline_score=0.1, optimized_score=0.2
    )
    handle(app, DeployProgram(program_id="p", version=3), ctx())
    score(app, plan, candidate=1.0, current=0.0)
    outcome = finish_gate(app, plan)
    assert outcome.result_type == "DeploymentRefused"
    assert outcome.data["error"]["code"] == "production_changed"
    assert app.program("p").deployed_version == 3


def test_a_candidate_deployed_meanwhile_rejects_the_gated_deploy(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(version=2), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    score(app, plan, candidate=1.0, current=0.0)
    outcome = finish_gate(app, plan)
    assert outcome.result_type == "CommandRejected"
    assert outcome.data["errors"][0]["loc"] == ["version"]
    assert app.stored_outcome("deploy-1") == outcome


def test_the_gate_scores_the_split_it_names(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    dataset = app.dataset("d")
    for split, expected in [
        ("train", dataset.split("train")),
        ("dev", dataset.split("dev")),
        ("all", list(dataset.examples)),
    ]:
        plan = handle(app, gated(split=split), ctx(f"deploy-{split}"))
        assert isinstance(plan, GatePlan)
        assert [run.devset for run in plan.runs] == [expected, expected], split
        assert [run.version for run in plan.runs] == [2, 1]


def test_gate_runs_are_evaluations_and_old_requests_load_as_plain_ones(
    app: DspyOps, ctx: Ids
) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(split="train"), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    run = app.evaluation(gate_run_id("deploy-1", "candidate"))
    assert (run.split, run.gate) == (
        "train",
        {"command_type": "DeployProgram", "role": "candidate"},
    )
    assert (run.command_id, run.version_used, run.dataset_id) == ("deploy-1", 2, "d")
    stored = next(
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("Evaluation.Requested")
    )
    state = app.mapper.transcoder.decode(stored.state)
    assert state["class_version"] == 6
    # As class version 3 wrote it: no split, no gate; it loads as an EvaluateProgram run.
    state["class_version"] = 3
    del state["split"], state["gate"], state["dataset_version"], state["judge"]
    old = restored(app, stored, state).mutate(None)
    assert (old.split, old.gate, old.asking_command) == (None, None, "EvaluateProgram")


def test_a_gated_deploy_travels_with_the_runs() -> None:
    topics = Topics()
    gate = {"dataset_id": "d"}
    assert command_topic(topics, "DeployProgram", {"program_id": "p", "version": 2}) == (
        topics.programs
    )
    assert command_topic(topics, "DeployProgram", {"program_id": "p", "gate": None}) == (
        topics.programs
    )
    assert command_topic(topics, "DeployProgram", {"program_id": "p", "gate": gate}) == (
        topics.optimizations
    )


@pytest.mark.parametrize(
    "gate",
    [
        {"dataset_id": "d", "min_delta": 1.5},
        {"dataset_id": "d", "min_delta": "0.1"},
        {"dataset_id": "d", "split": "test"},
        {"dataset_id": "d", "mindelta": 0.1},
        {"metric": "exact_match"},
    ],
)
def test_a_gate_is_validated_on_the_wire(gate: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DeployProgram.model_validate({"program_id": "p", "version": 2, "gate": gate})


def test_a_cancelled_gate_applies_nothing_and_ends_the_gated_command(
    app: DspyOps, ctx: Ids
) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    # The candidate's run ended before the cancel: it stays completed.
    (candidate, current) = plan.runs
    evaluations.complete_evaluation(app, candidate.evaluation_id, 1.0, [{"index": 0, "score": 1}])

    cancelled = handle(app, CancelGate(program_id="p", command_id="deploy-1"), ctx("cancel-1"))

    assert cancelled.result_type == "GateCancelled", cancelled.data
    assert cancelled.data["command_type"] == "DeployProgram"
    assert cancelled.data["evaluation_ids"] == [candidate.evaluation_id, current.evaluation_id]
    assert app.stored_outcome("deploy-1") == cancelled
    assert app.evaluation(current.evaluation_id).status == "cancelled"
    assert app.evaluation(candidate.evaluation_id).status == "completed"
    # The runs still scoring end, and the gate finishes: both meet the stored outcome.
    ended = evaluations.complete_evaluation(app, current.evaluation_id, 0.0, [])
    assert ended == cancelled
    assert finish_gate(app, plan) == cancelled
    # A redelivered gated command, too; production never moved.
    assert handle(app, gated(), ctx("deploy-1")) == cancelled
    assert app.program("p").deployed_version == 1


def test_a_gate_that_ended_or_never_was_is_not_cancelled(app: DspyOps, ctx: Ids) -> None:
    deployed_v1(app, ctx)
    unknown = handle(app, CancelGate(program_id="p", command_id="nope"), ctx())
    assert unknown.result_type == "CommandRejected"
    assert [(e["type"], e["loc"]) for e in unknown.data["errors"]] == [
        ("not_found", ["command_id"])
    ]
    gate_through(app, ctx, gated(), candidate=0.9, current=0.5)
    late = handle(app, CancelGate(program_id="p", command_id="deploy-1"), ctx())
    assert [(e["type"], e["loc"]) for e in late.data["errors"]] == [
        ("illegal_transition", ["command_id"])
    ]
    assert "has ended: ProgramDeployed" in late.data["errors"][0]["msg"]
    other = handle(app, CancelGate(program_id="q", command_id="deploy-1"), ctx())
    assert other.data["errors"][0]["type"] == "not_found"


def test_a_gate_run_ended_twice_is_no_rejection_of_the_gated_command(
    app: DspyOps, ctx: Ids
) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    score(app, plan, candidate=0.9, current=0.5)
    # A copy of the candidate's run that went on beside a retry ends it again.
    candidate = plan.runs[0].evaluation_id
    again = evaluations.complete_evaluation(app, candidate, 0.9, [])
    assert (again.result_type, again.data["error"]["code"]) == ("EvaluationFailed", "already_ended")
    assert app.stored_outcome("deploy-1") is None
    assert finish_gate(app, plan).result_type == "ProgramDeployed"


def test_a_redelivered_gate_resumes_though_the_program_moved_and_is_judged_at_the_end(
    app: DspyOps, ctx: Ids
) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    # Meanwhile someone deployed the candidate without a gate.
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    resumed = handle(app, gated(), ctx("deploy-1"))
    assert isinstance(resumed, GatePlan), resumed
    assert resumed.resumed
    score(app, resumed, candidate=0.9, current=0.5)
    # No run left open; the change, no longer allowed, is refused when judged.
    assert all(not app.evaluation(r.evaluation_id).is_open for r in plan.runs)
    outcome = finish_gate(app, resumed)
    assert outcome.result_type == "CommandRejected", outcome.data
    assert app.stored_outcome("deploy-1") == outcome
