"""A command id is an idempotency key: the same command again replays, another is refused.

As payment APIs do with idempotency keys: the same id with the same type and payload
gets the stored outcome again; with another type or payload it gets `CommandRejected`
(`id_reused`), and nothing is recorded for it.
"""

from __future__ import annotations

import pytest

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    OptimizationPlan,
    Outcome,
    handle,
    in_memory_env,
    optimizations,
)
from dspyops.aggregates.app.handlers import for_command
from dspyops.aggregates.app.outcomes import payload_digest
from dspyops.events.commands import (
    CancelOptimization,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
    UpdateProgram,
)
from tests.support.executions import complete

SIGNATURE = "question: str -> answer: str"
# The digest of UpdateProgram(program_id="p", description="one") under scheme v1.
PINNED = "v1:c8dce801c1af837e470d47ec628c6a31"


def ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id)


@pytest.fixture
def app() -> DspyOps:
    app = DspyOps(in_memory_env())
    handle(app, RegisterProgram(program_id="p", name="P", signature=SIGNATURE), ctx("reg"))
    examples = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]
    handle(app, RegisterDataset(dataset_id="d", name="D", examples=examples), ctx("ds"))
    return app


def log_length(app: DspyOps) -> int:
    return app.recorder.max_notification_id() or 0


def assert_id_reused(outcome: Outcome) -> None:
    assert outcome.result_type == "CommandRejected", outcome
    (error,) = outcome.data["errors"]
    assert (error["type"], error["loc"]) == ("id_reused", ["id"])


def test_the_same_command_again_gets_the_same_outcome(app: DspyOps) -> None:
    command = UpdateProgram(program_id="p", description="one")
    first = handle(app, command, ctx("u1"))
    length = log_length(app)
    assert handle(app, command, ctx("u1")) == first
    assert log_length(app) == length


def test_another_command_type_under_a_used_id_is_refused_and_not_recorded(app: DspyOps) -> None:
    length = log_length(app)
    outcome = handle(app, ExecuteProgram(program_id="p", inputs={"question": "q"}), ctx("reg"))
    assert isinstance(outcome, Outcome)
    assert_id_reused(outcome)
    assert log_length(app) == length
    # The id still answers its own command as before.
    again = handle(app, RegisterProgram(program_id="p", name="P", signature=SIGNATURE), ctx("reg"))
    assert again.result_type == "ProgramRegistered"


def test_another_payload_under_a_used_id_is_refused(app: DspyOps) -> None:
    handle(app, UpdateProgram(program_id="p", description="one"), ctx("u1"))
    outcome = handle(app, UpdateProgram(program_id="p", description="two"), ctx("u1"))
    assert_id_reused(outcome)
    assert app.program("p").description == "one"


def test_an_execution_id_reused_with_other_inputs_is_refused(app: DspyOps) -> None:
    command = ExecuteProgram(program_id="p", inputs={"question": "first"})
    plan = handle(app, command, ctx("x1"))
    # The worker records the execution under the context the command was handled with.
    complete(app, plan, for_command(command, ctx("x1")), outputs={"answer": "a"})
    other = handle(app, ExecuteProgram(program_id="p", inputs={"question": "other"}), ctx("x1"))
    assert isinstance(other, Outcome)
    assert_id_reused(other)
    replay = handle(app, command, ctx("x1"))
    assert isinstance(replay, Outcome)
    assert replay.result_type == "ExecutionSucceeded"


def test_a_running_optimization_id_reused_with_another_payload_is_refused(app: DspyOps) -> None:
    command = OptimizeProgram(program_id="p", dataset_id="d", optimization_id="o")
    plan = handle(app, command, ctx("o1"))
    assert isinstance(plan, OptimizationPlan)
    other = OptimizeProgram(program_id="p", dataset_id="d", optimization_id="o", metric="f1")
    refused = handle(app, other, ctx("o1"))
    assert isinstance(refused, Outcome)
    assert_id_reused(refused)
    # The running one resumes as itself and ends once; the refusal was never stored.
    resumed = handle(app, command, ctx("o1"))
    assert isinstance(resumed, OptimizationPlan)
    assert resumed.resumed
    done = optimizations.complete_optimization(
        app, "o", state={"demos": []}, baseline_score=0.1, optimized_score=0.2
    )
    assert done.result_type == "OptimizationCompleted"
    assert app.stored_outcome("o1") == done


def test_a_running_optimizations_id_taken_by_another_command_still_ends_and_cancels(
    app: DspyOps,
) -> None:
    # A producer reuses running commands' ids for other commands, which are applied.
    for run_id, command_id in (("o", "o1"), ("o2", "o2")):
        running = OptimizeProgram(program_id="p", dataset_id="d", optimization_id=run_id)
        assert isinstance(handle(app, running, ctx(command_id)), OptimizationPlan)
        taken = handle(app, UpdateProgram(program_id="p", description=run_id), ctx(command_id))
        assert taken.result_type == "ProgramUpdated"
    # A run in that situation can be cancelled (no endless conflict on the taken id).
    cancelled = handle(app, CancelOptimization(program_id="p", optimization_id="o2"), ctx("c2"))
    assert cancelled.result_type == "OptimizationCancelled"
    assert app.optimization("o2").status == "cancelled"
    # And one still ends with its real outcome; the id keeps the other command's.
    done = optimizations.complete_optimization(
        app, "o", state={"demos": []}, baseline_score=0.1, optimized_score=0.2
    )
    assert done.result_type == "OptimizationCompleted"
    assert app.optimization("o").status == "completed"
    assert (app.stored_outcome("o1") or done).result_type == "ProgramUpdated"


def test_the_payload_digest_is_pinned_and_ignores_unsent_defaults() -> None:
    # Pinned: a redelivery after an upgrade must digest as it did before it.
    command = UpdateProgram(program_id="p", description="one")
    assert payload_digest(command) == PINNED
    sent_default = ExecuteProgram.model_validate({"program_id": "p", "inputs": {}})
    assert "version" not in sent_default.model_fields_set
    assert payload_digest(sent_default) == payload_digest(
        ExecuteProgram.model_validate({"program_id": "p", "inputs": {}})
    )
    explicit = ExecuteProgram.model_validate({"program_id": "p", "inputs": {}, "version": 1})
    assert payload_digest(explicit) != payload_digest(sent_default)
