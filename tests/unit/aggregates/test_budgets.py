"""Program budgets: SetBudget, and executions admitted or refused against the spend ledger
(the in-memory one here; tests/integration/test_budget_ledger.py runs PostgreSQL's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dspyops.aggregates.app import DspyOps, ExecutionPlan, Outcome, handle
from dspyops.aggregates.app.budgets import InMemoryLedger, Spend, Wait, refusal
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.events.commands import DeprecateProgram, SetBudget
from tests.support.executions import complete
from tests.unit.aggregates.test_application import (
    Ids,
    execute,
    log_length,
    optimized,
    program_from_older_snapshot,
    register,
    topics_since,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ANSWER = {"answer": "a", "confidence": 1}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> DspyOps:
    return DspyOps(in_memory_env(), ledger=InMemoryLedger(clock=clock))


@pytest.fixture
def ctx() -> Ids:
    return Ids()


def budget_error(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, Outcome), outcome
    assert outcome.result_type == "CommandRejected", outcome.data
    (error,) = outcome.data["errors"]
    assert (error["type"], error["loc"]) == ("budget_exceeded", ["program_id"])
    return dict(error)


# --- the decision --------------------------------------------------------------------


def test_per_minute_refuses_at_the_limit_and_says_when_to_retry() -> None:
    spend = Spend(now=NOW, last_minute=3, oldest_in_minute=NOW - timedelta(seconds=45))
    assert refusal({"executions_per_minute": 4}, "p", spend) is None
    refused = refusal({"executions_per_minute": 3}, "p", spend)
    assert refused is not None
    (error,) = refused.errors
    assert error["ctx"] == {
        "limit": "executions_per_minute",
        "spent": 3,
        "allowed": 3,
        "retry_after_s": 15.0,
    }
    assert "retry after 15 s" in error["msg"]


def test_per_day_counts_spent_running_and_the_next_estimate() -> None:
    spend = Spend(now=NOW, usd_today=0.5, usd_reserved=0.3, estimate=0.1, ended=5)
    assert refusal({"usd_per_day": 0.9}, "p", spend) is None  # 0.5 + 0.3 + 0.1 fits
    refused = refusal({"usd_per_day": 0.85}, "p", spend)
    assert refused is not None
    assert refused.errors[0]["ctx"] == {
        "limit": "usd_per_day",
        "spent": 0.5,
        "running": 0.3,
        "estimate": 0.1,
        "allowed": 0.85,
        "day": "2026-11-29",
    }


def test_without_an_estimate_one_execution_runs_at_a_time() -> None:
    assert refusal({"usd_per_day": 1.0}, "p", Spend(now=NOW)) is None
    with pytest.raises(Wait):
        refusal({"usd_per_day": 1.0}, "p", Spend(now=NOW, unestimated_running=1))
    # Executions ended without a known price: dollars cannot be counted, nothing waits.
    unpriced = Spend(now=NOW, unestimated_running=3, ended=4)
    assert refusal({"usd_per_day": 1.0}, "p", unpriced) is None
    # Only the per-minute limit: nothing to estimate.
    assert refusal({"executions_per_minute": 9}, "p", Spend(now=NOW, unestimated_running=1)) is None


# --- SetBudget ---------------------------------------------------------------------------


def test_set_budget_is_an_event_with_the_actor_and_can_be_removed(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    start = log_length(app)
    outcome = handle(app, SetBudget(program_id="p", usd_per_day=2.5, reason="launch"), ctx())
    assert outcome.result_type == "ProgramBudgetSet"
    assert (outcome.data["usd_per_day"], outcome.data["executions_per_minute"]) == (2.5, None)
    assert topics_since(app, start) == ["BudgetSet", "Handled"]
    assert app.program("p").budget == {"usd_per_day": 2.5, "executions_per_minute": None}
    event: Any = list(app.events.get(app.program("p").id))[-1]
    assert (event.actor, event.reason) == ("t", "launch")

    handle(app, SetBudget(program_id="p"), ctx())
    assert app.program("p").budget is None


def test_a_deprecated_program_takes_no_budget(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    optimized(app, ctx)
    handle(app, DeprecateProgram(program_id="p"), ctx())
    outcome = handle(app, SetBudget(program_id="p", executions_per_minute=5), ctx())
    assert outcome.result_type == "CommandRejected"
    assert outcome.data["errors"][0]["type"] == "illegal_transition"


def test_a_program_snapshot_from_before_budgets_loads(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    # As class version 2 wrote it: no budget (nor what later versions added).
    program = program_from_older_snapshot(app, "p", 2, "budget", "served_versions", "aliases")
    assert program.budget is None
    assert program.program_id == "p"


# --- admission ---------------------------------------------------------------------------


def test_executions_per_minute_admit_exactly_the_limit(
    app: DspyOps, ctx: Ids, clock: Clock
) -> None:
    register(app, ctx)
    handle(app, SetBudget(program_id="p", executions_per_minute=3), ctx())
    plans = [execute(app, ctx(f"e{i}")) for i in range(3)]
    assert all(isinstance(plan, ExecutionPlan) and plan.budgeted for plan in plans)
    fourth = ctx("e3")
    error = budget_error(execute(app, fourth))
    assert error["ctx"]["spent"] == 3
    # Redelivered, the refusal is the stored outcome: the same answer, nothing recorded.
    start = log_length(app)
    assert budget_error(execute(app, fourth)) == error
    assert log_length(app) == start
    # A redelivered admitted command is not counted twice.
    clock.now += timedelta(seconds=30)
    assert isinstance(execute(app, ctx("e0")), ExecutionPlan)
    clock.now += timedelta(seconds=31)
    assert isinstance(execute(app, ctx("e4")), ExecutionPlan)


def test_dollars_per_day_stop_before_the_budget_is_passed(
    app: DspyOps, ctx: Ids, clock: Clock
) -> None:
    register(app, ctx)
    handle(app, SetBudget(program_id="p", usd_per_day=0.35), ctx())
    first = ctx("e0")
    plan = execute(app, first)
    # No cost known yet: the next waits for the first to end.
    with pytest.raises(Wait):
        execute(app, ctx("e1"))
    complete(app, plan, first, outputs=ANSWER, cost_usd=0.1)
    # 0.1 spent; each admission reserves 0.1 more: two more fit (0.3), a third does not.
    running = [(c, execute(app, c)) for c in (ctx("e1"), ctx("e2"))]
    error = budget_error(execute(app, ctx("e3")))
    assert error["ctx"]["spent"] == pytest.approx(0.1)
    assert error["ctx"]["running"] == pytest.approx(0.2)
    for c, plan in running:
        complete(app, plan, c, outputs=ANSWER, cost_usd=0.1)
    budget_error(execute(app, ctx("e4")))
    # A new UTC day starts from nothing spent.
    clock.now += timedelta(days=1)
    assert isinstance(execute(app, ctx("e5")), ExecutionPlan)


def test_a_program_without_budget_never_asks_the_ledger(ctx: Ids) -> None:
    class Refuses(InMemoryLedger):
        def admit(self, *args: Any) -> Any:
            raise AssertionError("asked")

    app = DspyOps(in_memory_env(), ledger=Refuses())
    register(app, ctx)
    plan = execute(app, ctx())
    assert isinstance(plan, ExecutionPlan)
    assert not plan.budgeted


def test_the_saved_program_is_what_the_next_execution_reads(app: DspyOps, ctx: Ids) -> None:
    """Executions read the cached program without waiting for a fast-forward in progress:
    the saved program replaces the cached one, so none is planned without the budget."""
    register(app, ctx)
    before = app.program("p", copy=False)
    handle(app, SetBudget(program_id="p", executions_per_minute=1), ctx())
    assert app.repository.cache is not None
    cached: Any = app.repository.cache.get(before.id)
    assert cached is not before
    assert cached.budget == {"usd_per_day": None, "executions_per_minute": 1}


def test_an_execution_id_another_command_is_running_is_not_admitted_again(
    app: DspyOps, ctx: Ids
) -> None:
    """A second command reusing a running execution's id would run (and spend) outside
    the budget: it is refused as the id's reuse it is."""
    register(app, ctx)
    handle(app, SetBudget(program_id="p", executions_per_minute=5), ctx())
    assert isinstance(execute(app, ctx("first"), execution_id="e"), ExecutionPlan)
    reused = execute(app, ctx("second"), execution_id="e")
    assert isinstance(reused, Outcome)
    (error,) = reused.data["errors"]
    assert (error["type"], error["loc"]) == ("already_exists", ["execution_id"])
