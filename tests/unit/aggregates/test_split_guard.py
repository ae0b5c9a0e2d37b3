"""The split guard: a worker's windows over guarded candidate arms, and the arm taken out
(by the system, once) when a full window fails too often; a healthy arm stays."""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app import DspyOps, ExecutionPlan, handle
from dspyops.aggregates.app.split_guard import GUARD_ACTOR, ArmWatch, remove_failing_arm
from dspyops.aggregates.program import Program
from dspyops.events.commands import DeployProgram, SetTrafficSplit, SplitGuard
from tests.unit.aggregates.test_aliases import three_versions
from tests.unit.aggregates.test_application import Ids, execute

GUARD = SplitGuard(max_error_rate=0.2, window=5)


def guarded(app: DspyOps, ctx: Ids) -> None:
    """v1 serves; production split v1 50 % / v2 25 % / v3 25 %, guarded."""
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=1), ctx())
    weights = {"1": 50, "2": 25, "3": 25}
    handle(app, SetTrafficSplit(program_id="p", weights=weights, guard=GUARD), ctx())


def plans_of(app: DspyOps, ctx: Ids, version: int, n: int) -> list[ExecutionPlan]:
    """`n` planned executions the split sent to `version`."""
    found: list[ExecutionPlan] = []
    while len(found) < n:
        plan = execute(app, ctx())
        assert isinstance(plan, ExecutionPlan)
        if plan.version == version:
            found.append(plan)
    return found


def test_only_candidate_arms_of_a_guarded_split_are_watched(app: DspyOps, ctx: Ids) -> None:
    guarded(app, ctx)
    (control,) = plans_of(app, ctx, 1, 1)
    (candidate,) = plans_of(app, ctx, 3, 1)
    assert control.guard is None
    assert candidate.guard == {
        "max_error_rate": 0.2,
        "window": 5,
        "arms": [
            {"version": 1, "percent": 50},
            {"version": 2, "percent": 25},
            {"version": 3, "percent": 25},
        ],
    }
    assert execute(app, ctx(), version=3).guard is None  # type: ignore[union-attr]


def test_a_full_window_over_the_rate_trips_once(app: DspyOps, ctx: Ids) -> None:
    guarded(app, ctx)
    watch = ArmWatch()
    plans = plans_of(app, ctx, 3, 5)
    # 1 failure in 5 is 0.2: not above the rate.
    outcomes = [False, True, False, False, False]
    assert [watch.observe(plan, failed) for plan, failed in zip(plans, outcomes, strict=True)] == [
        None
    ] * 5
    # The window slides: two failures among the last five trip it.
    assert watch.observe(plans[0], True) == (2, 5)
    # A tripped window starts again empty.
    assert watch.observe(plans[0], True) is None


def test_a_healthy_arm_never_trips(app: DspyOps, ctx: Ids) -> None:
    guarded(app, ctx)
    watch = ArmWatch()
    plans = plans_of(app, ctx, 2, 50)
    assert all(watch.observe(plan, failed=i % 10 == 0) is None for i, plan in enumerate(plans))


def test_the_arm_is_taken_out_by_dspyops_once(app: DspyOps, ctx: Ids) -> None:
    guarded(app, ctx)
    (plan,) = plans_of(app, ctx, 3, 1)
    cause = ctx("exec-failing")
    removed = remove_failing_arm(app, plan, cause, 4, 5)
    assert removed is not None
    assert removed.result_type == "ProgramSplitArmRemoved"
    data: dict[str, Any] = removed.data
    assert (data["alias"], data["version"], data["failed"], data["window"]) == (
        "production",
        3,
        4,
        5,
    )
    assert data["arms"] == [{"version": 1, "percent": 75}, {"version": 2, "percent": 25}]
    program = app.program("p")
    (event,) = [e for e in app.events.get(program.id) if isinstance(e, Program.SplitArmRemoved)]
    assert (event.actor, event.correlation_id, event.max_error_rate) == (
        GUARD_ACTOR,
        cause.correlation_id,
        0.2,
    )
    # Another worker tripping the same arm: it is out already; nothing more is recorded.
    assert remove_failing_arm(app, plan, ctx("exec-other"), 5, 5) is None
    assert program.splits["production"]["arms"] == data["arms"]
    # Executions no longer reach v3.
    assert {p.version for p in plans_of(app, ctx, 2, 3)} == {2}
    assert all(
        isinstance(p, ExecutionPlan) and p.version != 3
        for p in (execute(app, ctx()) for _ in range(200))
    )


def test_the_same_split_set_again_is_guarded_again(app: DspyOps, ctx: Ids) -> None:
    guarded(app, ctx)
    (plan,) = plans_of(app, ctx, 3, 1)
    assert remove_failing_arm(app, plan, ctx("e-1"), 5, 5) is not None
    weights = {"1": 50, "2": 25, "3": 25}
    handle(app, SetTrafficSplit(program_id="p", weights=weights, guard=GUARD), ctx())
    (again,) = plans_of(app, ctx, 3, 1)
    assert remove_failing_arm(app, again, ctx("e-2"), 5, 5) is not None
    assert [arm["version"] for arm in app.program("p").splits["production"]["arms"]] == [1, 2]


def test_a_window_of_a_split_since_changed_or_unguarded_takes_nothing_out(
    app: DspyOps, ctx: Ids
) -> None:
    guarded(app, ctx)
    (plan,) = plans_of(app, ctx, 3, 1)
    wider = {"1": 40, "2": 30, "3": 30}
    handle(app, SetTrafficSplit(program_id="p", weights=wider, guard=GUARD), ctx())
    assert remove_failing_arm(app, plan, ctx("e-1"), 5, 5) is None
    handle(app, SetTrafficSplit(program_id="p", weights=wider), ctx())
    assert remove_failing_arm(app, plan, ctx("e-2"), 5, 5) is None
    assert [arm["version"] for arm in app.program("p").splits["production"]["arms"]] == [1, 2, 3]
