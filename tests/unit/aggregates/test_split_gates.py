"""A gated SetTrafficSplit on the in-memory store: runs for each candidate arm and for the
alias's own version, then one outcome.

The split applies only when every candidate arm scored at least the alias's version's
score plus `min_delta`; a refusal leaves the split as it was, says why with every score
and run, and is a Program event; the alias moving, or its split changing, while the gate
ran refuses it too. Ending a split takes no gate.
"""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates.app import DspyOps, GatePlan, Outcome, finish_gate, handle
from dspyops.aggregates.app.gates import gate_run_id
from dspyops.aggregates.errors import NotFound
from dspyops.aggregates.program import Program
from dspyops.events.commands import (
    DeployProgram,
    PromotionGate,
    SetAlias,
    SetTrafficSplit,
    SplitGuard,
)
from dspyops.events.results import ProgramTrafficSplitSet, TrafficSplitRefused
from dspyops.events.topics import Topics, command_topic
from tests.unit.aggregates.test_aliases import three_versions
from tests.unit.aggregates.test_application import Ids, add_dataset, log_length, topics_since
from tests.unit.aggregates.test_gates import score

CANARY = {"2": 90, "3": 10}


def serving_v2(app: DspyOps, ctx: Ids) -> None:
    """Program p: v1, v2 (in production), v3; dataset d."""
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    add_dataset(app, ctx)


def gated(weights: dict[str, int] | None = None, alias: str = "production", **gate: Any) -> Any:
    return SetTrafficSplit(
        program_id="p",
        alias=alias,
        weights=weights or CANARY,
        guard=SplitGuard(max_error_rate=0.2),
        gate=PromotionGate(**{"dataset_id": "d", **gate}),
        reason="canary v3",
    )


def plan_of(app: DspyOps, ctx: Ids, command: SetTrafficSplit, command_id: str) -> GatePlan:
    plan = handle(app, command, ctx(command_id))
    assert isinstance(plan, GatePlan), plan
    return plan


def test_a_passing_gate_applies_the_split_with_a_report_per_candidate(
    app: DspyOps, ctx: Ids
) -> None:
    serving_v2(app, ctx)
    plan = plan_of(app, ctx, gated(min_delta=0.1), "split-1")
    assert [run.version for run in plan.runs] == [3, 2]
    assert app.program("p").splits == {}  # nothing applied while the gate runs
    score(app, plan, **{"candidate-v3": 0.8, "current": 0.7})

    outcome = finish_gate(app, plan)

    assert outcome.result_type == "ProgramTrafficSplitSet", outcome
    result = ProgramTrafficSplitSet.model_validate(outcome.data)
    assert [(a.version, a.percent) for a in result.arms] == [(2, 90), (3, 10)]
    (report,) = result.gates
    assert (report.candidate_version, report.current_version) == (3, 2)
    assert (report.candidate_score, report.current_score) == (0.8, 0.7)
    assert report.candidate_evaluation_id == gate_run_id("split-1", "candidate-v3")
    assert report.current_evaluation_id == gate_run_id("split-1", "current")
    split = app.program("p").splits["production"]
    assert split["guard"] == {"max_error_rate": 0.2, "window": 50}
    assert app.stored_outcome("split-1") == outcome


def test_a_refused_gate_leaves_the_split_untouched_and_says_why(app: DspyOps, ctx: Ids) -> None:
    serving_v2(app, ctx)
    handle(app, SetTrafficSplit(program_id="p", weights={"2": 95, "3": 5}), ctx())
    before = app.program("p").splits["production"]
    plan = plan_of(app, ctx, gated(min_delta=0.05), "split-1")
    score(app, plan, **{"candidate-v3": 0.5, "current": 0.6})
    assert app.stored_outcome("split-1") is None
    start = log_length(app)

    outcome = finish_gate(app, plan)

    assert outcome.result_type == "TrafficSplitRefused", outcome
    refused = TrafficSplitRefused.model_validate(outcome.data)
    assert refused.error.code == "gate_not_passed"
    assert "version 3 scored 0.5" in refused.error.message
    assert "version 2 in production scored 0.6" in refused.error.message
    assert "at least 0.65" in refused.error.message
    assert [(a.version, a.percent) for a in refused.arms] == [(2, 90), (3, 10)]
    assert [(a.version, a.percent) for a in refused.current_arms] == [(2, 95), (3, 5)]
    (report,) = refused.gates
    assert (report.candidate_score, report.current_score) == (0.5, 0.6)
    assert app.program("p").splits["production"] == before
    # The audit trail has the refusal as a Program event, with the gate's reports.
    assert topics_since(app, start) == ["TrafficSplitRefused", "Handled"]
    (event,) = [
        e for e in app.events.get(app.program("p").id) if isinstance(e, Program.TrafficSplitRefused)
    ]
    assert (event.code, event.alias, event.gates) == (
        "gate_not_passed",
        "production",
        [report.model_dump(mode="json")],
    )
    # Redelivered, it answers the same and records nothing.
    assert handle(app, gated(min_delta=0.05), ctx("split-1")) == outcome
    assert log_length(app) == start + 2


def test_every_candidate_arm_must_pass(app: DspyOps, ctx: Ids) -> None:
    serving_v2(app, ctx)
    weights = {"1": 10, "2": 80, "3": 10}
    plan = plan_of(app, ctx, gated(weights), "split-1")
    assert [run.version for run in plan.runs] == [1, 3, 2]
    score(app, plan, **{"candidate-v1": 0.4, "candidate-v3": 0.9, "current": 0.5})

    outcome = finish_gate(app, plan)

    assert outcome.result_type == "TrafficSplitRefused", outcome
    assert outcome.data["error"]["code"] == "gate_not_passed"
    assert "version 1 scored 0.4" in outcome.data["error"]["message"]
    assert "version 3" not in outcome.data["error"]["message"].split(";")[0]
    scores = [(g["candidate_version"], g["candidate_score"]) for g in outcome.data["gates"]]
    assert scores == [(1, 0.4), (3, 0.9)]
    assert app.program("p").splits == {}
    # Both pass: applied.
    plan = plan_of(app, ctx, gated(weights), "split-2")
    score(app, plan, **{"candidate-v1": 0.5, "candidate-v3": 0.9, "current": 0.5})
    assert finish_gate(app, plan).result_type == "ProgramTrafficSplitSet"
    assert len(app.program("p").splits["production"]["arms"]) == 3


def test_the_alias_moved_while_the_gate_ran_refuses_the_split(app: DspyOps, ctx: Ids) -> None:
    serving_v2(app, ctx)
    plan = plan_of(app, ctx, gated(), "split-1")
    handle(app, DeployProgram(program_id="p", version=1), ctx())
    score(app, plan, **{"candidate-v3": 1.0, "current": 0.0})

    outcome = finish_gate(app, plan)

    assert outcome.result_type == "TrafficSplitRefused", outcome
    assert outcome.data["error"]["code"] == "alias_moved"
    assert "production moved from version 2 to 1" in outcome.data["error"]["message"]
    assert app.program("p").splits == {}


def test_the_split_changed_while_the_gate_ran_refuses_the_split(app: DspyOps, ctx: Ids) -> None:
    serving_v2(app, ctx)
    plan = plan_of(app, ctx, gated(), "split-1")
    handle(app, SetTrafficSplit(program_id="p", weights={"2": 50, "3": 50}), ctx())
    score(app, plan, **{"candidate-v3": 1.0, "current": 0.0})

    outcome = finish_gate(app, plan)

    assert outcome.result_type == "TrafficSplitRefused", outcome
    assert outcome.data["error"]["code"] == "split_changed"
    assert "from none to v2 50 % / v3 50 %" in outcome.data["error"]["message"]
    arms = app.program("p").splits["production"]["arms"]
    assert arms == [{"version": 2, "percent": 50}, {"version": 3, "percent": 50}]


def test_a_redelivered_gate_keeps_the_split_it_began_against(app: DspyOps, ctx: Ids) -> None:
    """The split when the gate began is kept on its runs: a change between the first
    delivery and a redelivery is still seen."""
    serving_v2(app, ctx)
    plan_of(app, ctx, gated(), "split-1")
    handle(app, SetTrafficSplit(program_id="p", weights={"2": 50, "3": 50}), ctx())
    resumed = plan_of(app, ctx, gated(), "split-1")
    assert resumed.resumed
    score(app, resumed, **{"candidate-v3": 1.0, "current": 0.0})
    assert finish_gate(app, resumed).data["error"]["code"] == "split_changed"


def test_a_gated_split_of_another_alias_compares_with_its_version(app: DspyOps, ctx: Ids) -> None:
    serving_v2(app, ctx)
    handle(app, SetAlias(program_id="p", alias="canary", version=1), ctx())
    plan = plan_of(app, ctx, gated({"1": 50, "3": 50}, alias="canary"), "split-1")
    assert plan.current_version == 1
    score(app, plan, **{"candidate-v3": 0.5, "current": 0.9})
    outcome = finish_gate(app, plan)
    assert outcome.data["error"]["code"] == "gate_not_passed"
    assert "version 1 in canary scored 0.9" in outcome.data["error"]["message"]


def test_a_gated_split_is_checked_before_its_runs_start(app: DspyOps, ctx: Ids) -> None:
    serving_v2(app, ctx)
    handle(app, SetTrafficSplit(program_id="p", weights=CANARY), ctx())
    cases = {
        # Ending a split moves traffic back to the alias's own version: nothing to gate.
        "end": (gated({"2": 100}), ["gate"]),
        "sum": (gated({"2": 90, "3": 20}), ["weights"]),
        "no-version": (gated({"2": 90, "9": 10}), ["weights", "9"]),
        "no-alias": (gated({"2": 90, "3": 10}, alias="staging"), ["alias"]),
        "no-dataset": (gated({"2": 80, "3": 20}, dataset_id="x"), ["gate", "dataset_id"]),
    }
    for name, (command, loc) in cases.items():
        outcome = handle(app, command, ctx(name))
        assert isinstance(outcome, Outcome), name
        assert outcome.result_type == "CommandRejected", (name, outcome)
        assert outcome.data["errors"][0]["loc"] == loc, (name, outcome)
        with pytest.raises(NotFound):
            app.evaluation(gate_run_id(name, "current"))
    assert app.program("p").splits["production"]["arms"][1] == {"version": 3, "percent": 10}


def test_a_gated_split_travels_with_the_runs() -> None:
    topics = Topics()
    data: dict[str, Any] = {"program_id": "p", "weights": CANARY}
    assert command_topic(topics, "SetTrafficSplit", data) == topics.programs
    assert command_topic(topics, "SetTrafficSplit", {**data, "gate": None}) == topics.programs
    gated_data = {**data, "gate": {"dataset_id": "d"}}
    assert command_topic(topics, "SetTrafficSplit", gated_data) == topics.optimizations
