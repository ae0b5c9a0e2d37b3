"""Traffic splits (SetTrafficSplit): weights checked against the program, executions routed
by a stable hash of their routing key, the route recorded, splits ended by moving the
alias, and events and snapshots written before splits still load."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from dspyops.aggregates.app import DspyOps, ExecutionPlan, Outcome, handle
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.ids import execution_uuid
from dspyops.aggregates.program import Program
from dspyops.aggregates.traffic import BUCKETS, Arm, arm_for, bucket_of, without_arm
from dspyops.events.commands import (
    DeployProgram,
    DeprecateProgram,
    RemoveAlias,
    RollbackProgram,
    SetAlias,
    SetTrafficSplit,
    SplitGuard,
)
from tests.support.executions import complete
from tests.unit.aggregates.test_aliases import rejected, three_versions
from tests.unit.aggregates.test_application import (
    Ids,
    execute,
    log_length,
    program_from_older_snapshot,
    restored,
    topics_since,
)


def split(app: DspyOps, ctx: Ids, weights: dict[str, int], **kw: Any) -> Outcome:
    """An ungated split's outcome (a gated one plans its runs first: test_split_gates)."""
    outcome = handle(app, SetTrafficSplit(program_id="p", weights=weights, **kw), ctx())
    assert isinstance(outcome, Outcome), outcome
    return outcome


def canary(app: DspyOps, ctx: Ids, **kw: Any) -> Outcome:
    """v2 serves; split production v2 90 % / v3 10 %."""
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    return split(app, ctx, {"2": 90, "3": 10}, **kw)


def plan_of(outcome: Any) -> ExecutionPlan:
    assert isinstance(outcome, ExecutionPlan), outcome
    return outcome


def test_a_split_is_recorded_with_its_arms_guard_and_reason(app: DspyOps, ctx: Ids) -> None:
    guard: dict[str, Any] = {"max_error_rate": 0.2, "window": 20}
    outcome = canary(app, ctx, guard=SplitGuard.model_validate(guard), reason="canary v3")
    assert outcome.result_type == "ProgramTrafficSplitSet", outcome.data
    arms = [{"version": 2, "percent": 90}, {"version": 3, "percent": 10}]
    assert (outcome.data["alias"], outcome.data["arms"], outcome.data["previous_arms"]) == (
        "production",
        arms,
        [],
    )
    program = app.program("p")
    assert program.splits == {"production": {"arms": arms, "guard": guard}}
    # A split changes neither the status nor what production points at.
    assert (program.status, program.deployed_version) == ("deployed", 2)
    (event,) = [e for e in app.events.get(program.id) if isinstance(e, Program.TrafficSplitSet)]
    assert (event.reason, event.actor, event.guard) == ("canary v3", "t", guard)


@pytest.mark.parametrize(
    ("weights", "loc", "kind", "words"),
    [
        ({"2": 80, "3": 10}, ["weights"], "invalid_input", "sum to 90"),
        ({"1": 90, "3": 10}, ["weights"], "invalid_input", "points at (2)"),
        ({"2": 90, "9": 10}, ["weights", "9"], "not_found", "no version 9"),
        ({"2": 100}, ["weights"], "illegal_transition", "has no split"),
    ],
)
def test_weights_are_checked_against_the_program(
    app: DspyOps, ctx: Ids, weights: dict[str, int], loc: list[str], kind: str, words: str
) -> None:
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    start = log_length(app)
    got_kind, got_loc, msg = rejected(
        handle(app, SetTrafficSplit(program_id="p", weights=weights), ctx())
    )
    assert (got_kind, got_loc) == (kind, loc)
    assert words in msg
    assert app.program("p").splits == {}
    assert set(topics_since(app, start)) <= {"Handled"}


def test_the_wire_refuses_bad_percents_and_keys() -> None:
    for weights in ({"2": 0, "3": 100}, {"2": 101}, {"v2": 100}, {"02": 100}, {}):
        with pytest.raises(ValidationError):
            SetTrafficSplit.model_validate({"program_id": "p", "weights": weights})
    with pytest.raises(ValidationError):
        SetTrafficSplit.model_validate(
            {"program_id": "p", "weights": {"1": 100}, "guard": {"max_error_rate": 1.0}}
        )


def test_a_split_needs_its_alias_and_a_live_program(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    kind, loc, msg = rejected(
        handle(app, SetTrafficSplit(program_id="p", weights={"1": 50, "2": 50}), ctx())
    )
    assert (kind, loc) == ("not_found", ["alias"])
    assert "no version is deployed" in msg
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    handle(app, DeprecateProgram(program_id="p"), ctx())
    kind, loc, _ = rejected(
        handle(app, SetTrafficSplit(program_id="p", weights={"2": 50, "3": 50}), ctx())
    )
    assert (kind, loc) == ("illegal_transition", ["status"])


def test_the_same_split_again_is_refused_and_a_new_one_replaces_it(app: DspyOps, ctx: Ids) -> None:
    canary(app, ctx)
    kind, loc, msg = rejected(
        handle(app, SetTrafficSplit(program_id="p", weights={"3": 10, "2": 90}), ctx())
    )
    assert (kind, loc) == ("illegal_transition", ["weights"])
    assert "already" in msg
    wider = split(app, ctx, {"2": 50, "3": 50})
    assert wider.data["previous_arms"] == [
        {"version": 2, "percent": 90},
        {"version": 3, "percent": 10},
    ]
    ended = split(app, ctx, {"2": 100})
    assert ended.result_type == "ProgramTrafficSplitSet"
    assert ended.data["arms"] == []
    assert app.program("p").splits == {}


def test_executions_follow_the_split_and_one_key_keeps_one_version(app: DspyOps, ctx: Ids) -> None:
    canary(app, ctx)
    versions = Counter(plan_of(execute(app, ctx())).version for _ in range(2000))
    assert set(versions) == {2, 3}
    # 10 % of 2,000 is 200; a binomial's 4 standard deviations are ±54.
    assert 146 <= versions[3] <= 254, versions
    chosen = {plan_of(execute(app, ctx(), routing_key="user-7")).version for _ in range(50)}
    assert len(chosen) == 1


def test_the_route_says_why_and_is_recorded_with_the_execution(app: DspyOps, ctx: Ids) -> None:
    canary(app, ctx)
    c = ctx("exec-r")
    plan = plan_of(execute(app, c, routing_key="user-7"))
    route = plan.route
    assert route is not None
    bucket = bucket_of("p", "production", "user-7")
    assert route == {
        "alias": "production",
        "arm": plan.version,
        "bucket": bucket,
        "reason": f"production split v2 90 % / v3 10 %: routing key bucket {bucket} -> "
        f"v{plan.version}",
    }
    outcome = complete(app, plan, c, outputs={"answer": "a", "confidence": 1})
    assert outcome.data["route"] == route
    execution: Execution = app.repository.get(execution_uuid("exec-r"))
    assert execution.route == route
    # Named versions bypass the split; an unsplit alias says what it points at.
    named = plan_of(execute(app, ctx(), version=3))
    assert (named.version, named.route) == (
        3,
        {"alias": None, "arm": None, "bucket": None, "reason": "version 3 requested"},
    )
    handle(app, SetAlias(program_id="p", alias="staging", version=1), ctx())
    staged = plan_of(execute(app, ctx(), alias="staging"))
    assert staged.route is not None
    assert (staged.route["alias"], staged.route["arm"]) == ("staging", None)


def test_a_redelivered_execution_keeps_its_version_and_route(app: DspyOps, ctx: Ids) -> None:
    canary(app, ctx)
    c = ctx("exec-a")
    first = plan_of(execute(app, c, routing_key="k"))
    complete(app, first, c, outputs={"answer": "a", "confidence": 1})
    handle(app, SetTrafficSplit(program_id="p", weights={"2": 10, "3": 90}), ctx())
    again = execute(app, c, routing_key="k")
    assert isinstance(again, Outcome)
    assert (again.data["version"], again.data["route"]) == (first.version, first.route)


@pytest.mark.parametrize(
    "move",
    [
        DeployProgram(program_id="p", version=3),
        RollbackProgram(program_id="p", version=1),
    ],
)
def test_moving_production_ends_its_split(app: DspyOps, ctx: Ids, move: Any) -> None:
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=1), ctx())
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    handle(app, SetTrafficSplit(program_id="p", weights={"2": 90, "3": 10}), ctx())
    assert handle(app, move, ctx()).result_type.startswith("Program")
    assert app.program("p").splits == {}
    plan = plan_of(execute(app, ctx()))
    assert plan.route is not None
    assert plan.route["arm"] is None


def test_moving_or_removing_another_alias_ends_its_split_only(app: DspyOps, ctx: Ids) -> None:
    canary(app, ctx)
    handle(app, SetAlias(program_id="p", alias="staging", version=1), ctx())
    handle(
        app,
        SetTrafficSplit(program_id="p", alias="staging", weights={"1": 50, "3": 50}),
        ctx(),
    )
    assert set(app.program("p").splits) == {"production", "staging"}
    handle(app, RemoveAlias(program_id="p", alias="staging"), ctx())
    assert set(app.program("p").splits) == {"production"}


def test_buckets_are_stable_and_share_out_by_weight() -> None:
    # Stable across processes and releases: SHA-256, not Python's salted hash. A change
    # of this value would move every user of every split to another arm.
    assert bucket_of("p", "production", "user-7") == 9261
    assert bucket_of("p", "production", "user-7") != bucket_of("p", "staging", "user-7")
    arms: list[Arm] = [{"version": 2, "percent": 90}, {"version": 3, "percent": 10}]
    assert arm_for(arms, 0) == 2
    assert arm_for(arms, 8999) == 2
    assert arm_for(arms, 9000) == 3
    assert arm_for(arms, BUCKETS - 1) == 3
    three: list[Arm] = [*arms, {"version": 4, "percent": 5}]
    assert without_arm(three, 3, control=2) == [
        {"version": 2, "percent": 100},
        {"version": 4, "percent": 5},
    ]


def test_the_guard_takes_a_candidate_arm_out_never_the_control(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=1), ctx())
    guard = SplitGuard(max_error_rate=0.2, window=10)
    handle(
        app,
        SetTrafficSplit(program_id="p", weights={"1": 80, "2": 10, "3": 10}, guard=guard),
        ctx(),
    )
    program = app.program("p")
    with pytest.raises(Exception, match="not a candidate arm"):
        program.remove_split_arm("production", 1, failed=9, window=10, **ctx().meta())
    left = program.remove_split_arm("production", 3, failed=9, window=10, **ctx().meta())
    assert left == [{"version": 1, "percent": 90}, {"version": 2, "percent": 10}]
    assert program.splits["production"]["arms"] == left
    program.remove_split_arm("production", 2, failed=3, window=10, **ctx().meta())
    # Only the control arm left: the split is over.
    assert program.splits == {}


def test_events_and_snapshots_from_before_splits_load(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    # A program snapshot as class version 5 wrote it: no splits.
    program = program_from_older_snapshot(app, "p", 5, "splits")
    assert program.splits == {}
    assert program.route(None, None, "k")[0]["number"] == 2
    # An Execution.Requested as version 1 wrote it: no route.
    c = ctx("exec-old")
    plan = plan_of(execute(app, c))
    complete(app, plan, c, outputs={"answer": "a", "confidence": 1})
    stored = app.events.recorder.select_events(execution_uuid("exec-old"), limit=1)[0]
    state = app.mapper.transcoder.decode(stored.state)
    del state["route"]
    state["class_version"] = 1
    older = restored(app, stored, state)
    assert isinstance(older, Execution.Requested)
    assert older.route is None
    loaded = older.mutate(None)
    assert isinstance(loaded, Execution)
    assert loaded.route is None
