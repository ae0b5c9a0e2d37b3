"""DspyOps on the in-memory store: idempotency, rejections, executions, optimizations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from pydantic import ValidationError

from dspyops.aggregates.app import (
    Checks,
    CommandContext,
    DspyOps,
    EvaluationPlan,
    ExecutionPlan,
    OptimizationPlan,
    Outcome,
    evaluations,
    handle,
    optimizations,
)
from dspyops.aggregates.app.executions import Completion, complete_executions
from dspyops.aggregates.app.outcomes import handled_record
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.aggregates.errors import NotFound
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.run import CANCELLED
from dspyops.events.commands import (
    AppendExamples,
    CancelOptimization,
    Command,
    DeployProgram,
    DeprecateProgram,
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
    RollbackProgram,
    RunBudget,
    TrainProgram,
    UpdateProgram,
)
from dspyops.events.results import ErrorInfo, Usage
from tests.support.executions import complete
from tests.support.lifecycle import ALLOWED

SIGNATURE = "question: str, context: str -> answer: str, confidence: float[0, 1]"
STATE = {"predict": {"demos": [{"question": "q", "context": "c", "answer": "a"}]}}


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, command_id: str | None = None) -> CommandContext:
        self.n += 1
        command_id = command_id or f"cmd-{self.n}"
        return CommandContext(command_id=command_id, correlation_id=f"corr-{command_id}", actor="t")


def restored(app: DspyOps, stored: StoredEvent, state: dict[str, Any]) -> Any:
    """The domain event `stored` would be had it been written with `state` (an event as
    an earlier class version wrote it, to check it still loads)."""
    older = StoredEvent(
        stored.originator_id,
        stored.originator_version,
        stored.topic,
        app.mapper.transcoder.encode(state),
    )
    return app.mapper.to_domain_event(older)


def program_from_older_snapshot(
    app: DspyOps, program_id: str, class_version: int, *missing: str
) -> Any:
    """The program as loaded from a snapshot taken now but written as `class_version`
    wrote it: without the attributes `missing` (those later versions added)."""
    aggregate_id = app.program(program_id).id
    app.take_snapshot(aggregate_id)
    assert app.snapshots is not None
    stored = app.snapshots.recorder.select_events(aggregate_id, desc=True, limit=1)[0]
    snapshot = app.mapper.transcoder.decode(stored.state)
    for name in missing:
        del snapshot["state"][name]
    snapshot["state"]["class_version"] = class_version
    return restored(app, stored, snapshot).mutate(None)


def log_length(app: DspyOps) -> int:
    return app.recorder.max_notification_id() or 0


def topics_since(app: DspyOps, start: int) -> list[str]:
    notifications = app.recorder.select_notifications(start + 1, 10_000)
    return [n.topic.rsplit(".", 1)[-1] for n in notifications]


def register(app: DspyOps, ctx: Ids, program_id: str = "p") -> Outcome:
    return handle(
        app, RegisterProgram(program_id=program_id, name="QA", signature=SIGNATURE), ctx()
    )


def add_dataset(app: DspyOps, ctx: Ids, dataset_id: str = "d", n: int = 20) -> None:
    items = [
        {"question": f"q{i}", "context": "c", "answer": f"a{i}", "confidence": 1.0}
        for i in range(n)
    ]
    outcome = handle(app, RegisterDataset(dataset_id=dataset_id, name="D", examples=items), ctx())
    assert outcome.result_type == "DatasetRegistered"


def optimized(app: DspyOps, ctx: Ids, program_id: str = "p") -> Outcome:
    add_dataset(app, ctx, dataset_id=f"d-{program_id}")
    plan = handle(app, OptimizeProgram(program_id=program_id, dataset_id=f"d-{program_id}"), ctx())
    assert isinstance(plan, OptimizationPlan)
    return optimizations.complete_optimization(
        app, plan.optimization_id, state=STATE, baseline_score=0.4, optimized_score=0.8
    )


def program_in(app: DspyOps, ctx: Ids, status: str) -> None:
    register(app, ctx)
    if status == "training":
        handle(app, TrainProgram(program_id="p"), ctx())
    if status in {"optimized", "deployed", "deprecated"}:
        assert optimized(app, ctx).result_type == "OptimizationCompleted"
    if status == "deployed":
        # v1 served, then v2: so a rollback to v1 is possible (tests/support/lifecycle.py).
        handle(app, DeployProgram(program_id="p", version=1), ctx())
        handle(app, DeployProgram(program_id="p", version=2), ctx())
    if status == "deprecated":
        handle(app, DeprecateProgram(program_id="p"), ctx())
    assert app.program("p").status == status


# --- idempotency and rejections ---------------------------------------------------------


def test_same_command_id_twice_gives_the_same_outcome_and_records_nothing(
    app: DspyOps, ctx: Ids
) -> None:
    command = RegisterProgram(program_id="p", name="QA", signature=SIGNATURE)
    first = handle(app, command, ctx("c1"))
    length = log_length(app)
    assert topics_since(app, 0) == ["Registered", "Handled"]
    second = handle(app, command, ctx("c1"))
    assert second == first
    assert log_length(app) == length


def test_signature_is_stored_canonical(app: DspyOps, ctx: Ids) -> None:
    outcome = handle(
        app, RegisterProgram(program_id="p", name="QA", signature="question:str->answer:str"), ctx()
    )
    assert outcome.data["signature"] == "question: str -> answer: str"


def test_register_program_id_defaults_to_the_command_id(app: DspyOps, ctx: Ids) -> None:
    outcome = handle(app, RegisterProgram(name="QA", signature=SIGNATURE), ctx("env-1"))
    assert outcome.subject == "env-1"
    assert app.program("env-1").name == "QA"


def test_a_bad_signature_is_rejected_with_its_position(app: DspyOps, ctx: Ids) -> None:
    outcome = handle(
        app,
        RegisterProgram(program_id="p", name="QA", signature="question: strr -> answer: str"),
        ctx(),
    )
    assert outcome.result_type == "CommandRejected"
    assert outcome.data["errors"][0]["loc"] == ["signature"]
    assert "column" in outcome.data["errors"][0]["msg"]
    assert topics_since(app, 0) == ["Handled"]


STATUS_COMMANDS: dict[str, Callable[[], Command]] = {
    "train": lambda: TrainProgram(program_id="p"),
    "deploy": lambda: DeployProgram(program_id="p", version=1),
    "rollback": lambda: RollbackProgram(program_id="p", version=1),
    "deprecate": lambda: DeprecateProgram(program_id="p"),
    "update": lambda: UpdateProgram(program_id="p", instructions="Shorter."),
}


@pytest.mark.parametrize("status", ["draft", "training", "optimized", "deployed", "deprecated"])
@pytest.mark.parametrize("action", sorted(STATUS_COMMANDS))
def test_program_commands_from_every_status(
    app: DspyOps, ctx: Ids, status: str, action: str
) -> None:
    program_in(app, ctx, status)
    length = log_length(app)
    outcome = handle(app, STATUS_COMMANDS[action](), ctx())
    assert isinstance(outcome, Outcome)
    if (status, action) in ALLOWED:
        assert outcome.result_type != "CommandRejected", outcome
        assert outcome.data["status"] == ALLOWED[(status, action)]
        assert topics_since(app, length)[-1] == "Handled"
        assert len(topics_since(app, length)) == 2
    else:
        assert outcome.result_type == "CommandRejected"
        assert outcome.data["errors"][0]["type"] == "illegal_transition"
        # The rejection itself is remembered, nothing in the program changed.
        assert topics_since(app, length) == ["Handled"]
        assert app.program("p").status == status


def test_rejected_command_redelivered_records_nothing(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    first = handle(app, DeployProgram(program_id="p", version=1), ctx("deploy-1"))
    length = log_length(app)
    assert handle(app, DeployProgram(program_id="p", version=1), ctx("deploy-1")) == first
    assert log_length(app) == length


def test_unknown_program_is_not_found(app: DspyOps, ctx: Ids) -> None:
    outcome = handle(app, TrainProgram(program_id="nope"), ctx())
    assert outcome.data["errors"][0]["type"] == "not_found"
    assert outcome.subject == "nope"


def test_dataset_register_and_append(app: DspyOps, ctx: Ids) -> None:
    add_dataset(app, ctx, n=10)
    outcome = handle(
        app, AppendExamples(dataset_id="d", examples=[{"question": "x", "context": "c"}]), ctx()
    )
    assert outcome.result_type == "ExamplesAppended"
    assert (outcome.data["size"], outcome.data["appended"]) == (11, 1)
    again = handle(app, RegisterDataset(dataset_id="d", name="D", examples=[]), ctx())
    assert again.data["errors"][0]["type"] == "already_exists"


# --- conflicts -------------------------------------------------------------------------


def test_a_conflicting_concurrent_write_is_retried_not_lost(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    original_save = app.save
    interfered = False

    def save_after_another_writer(*objs: Any, **kwargs: Any) -> Any:
        nonlocal interfered
        if not interfered:
            interfered = True
            # Another writer changes the program between our read and our write.
            app.save = original_save  # type: ignore[method-assign]
            handle(app, UpdateProgram(program_id="p", description="theirs"), ctx("other"))
            app.save = save_after_another_writer  # type: ignore[method-assign]
        return original_save(*objs, **kwargs)

    app.save = save_after_another_writer  # type: ignore[method-assign]
    outcome = handle(app, UpdateProgram(program_id="p", instructions="ours"), ctx("mine"))
    assert outcome.result_type == "ProgramUpdated"
    program = app.program("p")
    assert (program.description, program.instructions) == ("theirs", "ours")
    assert program.latest_version == 2


def test_a_command_handled_meanwhile_by_another_worker_returns_its_outcome(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    theirs = Outcome(result_type="ProgramTrainingStarted", subject="p", data={"by": "other"})
    original_save = app.save

    def save_after_other_worker(*objs: Any, **kwargs: Any) -> Any:
        app.save = original_save  # type: ignore[method-assign]
        original_save(handled_record(ctx("train-1"), theirs))
        return original_save(*objs, **kwargs)

    app.save = save_after_other_worker  # type: ignore[method-assign]
    assert handle(app, TrainProgram(program_id="p"), ctx("train-1")) == theirs
    assert app.program("p").status == "draft"


# --- executions ------------------------------------------------------------------------


def execute(
    app: DspyOps, ctx: CommandContext, inputs: dict[str, Any] | None = None, **kw: Any
) -> ExecutionPlan | Outcome:
    inputs = {"question": "q", "context": "c"} if inputs is None else inputs
    return handle(app, ExecuteProgram(program_id="p", inputs=inputs, **kw), ctx)


def test_execution_plan_and_success(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c = ctx("exec-1")
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    assert (plan.execution_id, plan.version, plan.state, plan.lm) == ("exec-1", 1, None, "default")
    assert plan.signature == SIGNATURE
    length = log_length(app)
    outcome = complete(
        app,
        plan,
        c,
        outputs={"answer": "a", "confidence": "0.9"},
        latency_ms=12.5,
        usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        model="openai/gpt-4o-mini",
    )
    assert outcome.result_type == "ExecutionSucceeded"
    assert outcome.data["outputs"] == {"answer": "a", "confidence": 0.9}
    assert outcome.data["usage"]["total_tokens"] == 5
    assert topics_since(app, length) == ["Requested", "Succeeded", "Handled"]
    execution = app.execution("exec-1")
    assert execution is not None
    assert execution.status == "succeeded"
    # Redelivery: both steps answer with the stored outcome and record nothing.
    length = log_length(app)
    assert execute(app, c) == outcome
    assert complete(app, plan, c, outputs={"answer": "b"}, latency_ms=1) == outcome
    assert log_length(app) == length


def test_an_executions_cost_is_in_its_result_and_events_and_old_events_load(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    usage = {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    ok, failing = ctx("ok"), ctx("failing")
    succeeded = complete(
        app,
        execute(app, ok),
        ok,
        outputs={"answer": "a", "confidence": 1},
        usage=usage,
        cost_usd=0.25,
    )
    failed = complete(
        app,
        execute(app, failing),
        failing,
        error=ErrorInfo(code="lm_error", message="HTTP 500"),
        usage=usage,
        cost_usd=0.25,
    )

    assert succeeded.data["cost_usd"] == 0.25
    # A failure keeps the tokens it was billed for, and their cost.
    assert (failed.data["usage"]["total_tokens"], failed.data["cost_usd"]) == (37, 0.25)
    execution = app.execution("failing")
    assert execution is not None
    assert (execution.usage, execution.cost_usd) == (usage, 0.25)
    # Endings written before costs (class version 2) load with the cost unknown.
    for ending in ("Succeeded", "Failed"):
        stored = next(
            n for n in app.recorder.select_notifications(1, 100) if n.topic.endswith(ending)
        )
        state = app.mapper.transcoder.decode(stored.state)
        assert state["class_version"] == 3
        state["class_version"] = 2
        del state["cost_usd"]
        if ending == "Failed":
            del state["usage"]
        event = restored(app, stored, state)
        assert event.cost_usd is None
        if ending == "Failed":
            assert event.usage is None


def test_outputs_that_violate_the_signature_fail_the_execution(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c = ctx()
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    outcome = complete(app, plan, c, outputs={"answer": "a", "confidence": 7}, latency_ms=3)
    assert outcome.result_type == "ExecutionFailed"
    assert outcome.data["error"]["code"] == "output_invalid"
    assert outcome.data["error"]["details"][0]["loc"] == ["outputs", "confidence"]
    execution = app.execution(plan.execution_id)
    assert execution is not None
    assert execution.error_code == "output_invalid"


def test_chain_of_thought_reasoning_is_kept_beside_the_outputs(app: DspyOps, ctx: Ids) -> None:
    handle(
        app,
        RegisterProgram(program_id="p", name="QA", signature=SIGNATURE, module="ChainOfThought"),
        ctx(),
    )
    c = ctx()
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    outputs = {"reasoning": "because", "answer": "a", "confidence": 1}
    outcome = complete(app, plan, c, outputs=outputs, latency_ms=1, usage={"total_tokens": 4})
    assert outcome.data["outputs"] == {"answer": "a", "confidence": 1.0, "reasoning": "because"}
    assert outcome.data["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 4}


def test_runtime_errors_are_recorded_as_failures(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c = ctx()
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    error = ErrorInfo(code="lm_timeout", message="no answer in 30 s")
    outcome = complete(app, plan, c, error=error, latency_ms=30_000)
    assert outcome.data["error"] == error.model_dump()
    c = ctx()
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    outcome = complete(
        app, plan, c, error=ErrorInfo(code="lm_error", message="bad gateway"), latency_ms=5
    )
    assert outcome.data["error"]["code"] == "lm_error"


@pytest.mark.parametrize(
    ("kwargs", "error_type"),
    [
        ({"inputs": {"question": "q"}}, "missing"),
        ({"inputs": {"question": "q", "context": "c", "extra": 1}}, "extra_forbidden"),
        ({"version": 5}, "not_found"),
    ],
)
def test_bad_executions_are_rejected_before_any_lm_call(
    app: DspyOps, ctx: Ids, kwargs: dict[str, Any], error_type: str
) -> None:
    register(app, ctx)
    length = log_length(app)
    outcome = execute(app, ctx(), **kwargs)
    assert isinstance(outcome, Outcome)
    assert outcome.result_type == "CommandRejected"
    assert error_type in {e["type"] for e in outcome.data["errors"]}
    assert topics_since(app, length) == ["Handled"]


def test_unknown_and_deprecated_programs_reject_executions(app: DspyOps, ctx: Ids) -> None:
    outcome = execute(app, ctx())
    assert isinstance(outcome, Outcome)
    assert outcome.data["errors"][0]["type"] == "not_found"
    program_in(app, ctx, "deprecated")
    outcome = execute(app, ctx())
    assert isinstance(outcome, Outcome)
    assert "deprecated" in outcome.data["errors"][0]["msg"]


def test_an_execution_id_is_not_reused_by_another_command(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c = ctx()
    plan = execute(app, c, execution_id="run-1")
    assert isinstance(plan, ExecutionPlan)
    complete(app, plan, c, outputs={"answer": "a", "confidence": 1}, latency_ms=1)
    outcome = execute(app, ctx(), execution_id="run-1")
    assert isinstance(outcome, Outcome)
    assert outcome.data["errors"][0]["type"] == "already_exists"


def test_two_commands_planned_with_one_execution_id_complete_once(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c1, c2 = ctx(), ctx()
    plan1 = execute(app, c1, execution_id="shared")
    plan2 = execute(app, c2, execution_id="shared")
    assert isinstance(plan1, ExecutionPlan)
    assert isinstance(plan2, ExecutionPlan)
    outputs = {"answer": "a", "confidence": 1}
    first = complete(app, plan1, c1, outputs=outputs, latency_ms=1)
    second = complete(app, plan2, c2, outputs=outputs, latency_ms=1)
    assert first.result_type == "ExecutionSucceeded"
    assert second.data["errors"][0]["type"] == "already_exists"
    execution = app.execution("shared")
    assert execution is not None
    assert execution.command_id == c1.command_id
    assert app.conflicts == 1


def test_executions_use_deployed_else_latest_unless_named(app: DspyOps, ctx: Ids) -> None:
    program_in(app, ctx, "optimized")
    plan = execute(app, ctx())
    assert isinstance(plan, ExecutionPlan)
    assert (plan.version, plan.state) == (2, STATE)
    handle(app, DeployProgram(program_id="p", version=1), ctx())
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    handle(app, RollbackProgram(program_id="p", version=1), ctx())
    handle(app, UpdateProgram(program_id="p", instructions="Newest."), ctx())
    plan = execute(app, ctx())
    assert isinstance(plan, ExecutionPlan)
    assert plan.version == 1
    plan = execute(app, ctx(), version=3)
    assert isinstance(plan, ExecutionPlan)
    assert (plan.version, plan.instructions, plan.state) == (3, "Newest.", STATE)


def test_a_stored_request_alone_is_completed_later(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c = ctx("exec-2")
    inputs = {"question": "q", "context": "c"}
    app.save(Execution(execution_id="exec-2", program_id="p", version=1, inputs=inputs, **c.meta()))
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    assert plan.execution_id == "exec-2"
    length = log_length(app)
    outcome = complete(app, plan, c, outputs={"answer": "a", "confidence": 0}, latency_ms=1)
    assert outcome.result_type == "ExecutionSucceeded"
    assert topics_since(app, length) == ["Succeeded", "Handled"]


# --- optimizations and evaluations -----------------------------------------------------------


def test_optimization_completion_creates_a_version(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    c = ctx("opt-cmd")
    plan = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), c)
    assert isinstance(plan, OptimizationPlan)
    assert (plan.optimization_id, plan.version, plan.optimizer) == (
        "opt-cmd",
        1,
        "BootstrapFewShot",
    )
    assert len(plan.trainset) + len(plan.devset) == 20
    progress = optimizations.record_progress(app, "opt-cmd", 1, 4, 0.6)
    assert progress is not None
    assert progress.data["step"] == 1
    assert app.stored_outcome("opt-cmd") is None
    outcome = optimizations.complete_optimization(
        app, "opt-cmd", state=STATE, baseline_score=0.5, optimized_score=0.75
    )
    assert outcome.result_type == "OptimizationCompleted"
    assert (outcome.data["version"], outcome.data["optimized_score"]) == (2, 0.75)
    program = app.program("p")
    assert program.status == "optimized"
    assert program.get_version(2)["state"] == STATE
    assert app.stored_outcome("opt-cmd") == outcome
    length = log_length(app)
    again = optimizations.complete_optimization(
        app, "opt-cmd", state={}, baseline_score=0, optimized_score=0
    )
    assert again == outcome
    assert handle(app, OptimizeProgram(program_id="p", dataset_id="d"), c) == outcome
    assert log_length(app) == length


def test_an_optimized_plugin_version_records_the_plugin_it_was_made_with(ctx: Ids) -> None:
    info = {"name": "multihop", "distribution": "multihop-qa", "version": "1.0", "sha256": "ab"}

    def plugin(name: str, options: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Any]]:
        return {**info, "signature": "question: str -> answer: str"}, []

    app = DspyOps(in_memory_env(), checks=Checks(plugin=plugin))
    registered = handle(
        app, RegisterProgram(program_id="p", name="M", module="plugin:multihop"), ctx()
    )
    assert registered.result_type == "ProgramRegistered", registered
    items = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(20)]
    handle(app, RegisterDataset(dataset_id="d", name="D", examples=items), ctx())
    plan = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx())
    assert isinstance(plan, OptimizationPlan)

    optimizations.complete_optimization(
        app, plan.optimization_id, state={}, baseline_score=0.4, optimized_score=0.8
    )

    program = app.program("p")
    recorded = program.get_version(2)["plugin"]
    assert recorded == program.get_version(1)["plugin"]
    assert recorded is not None
    assert recorded["distribution"] == "multihop-qa"


def test_optimization_requests_are_checked(app: DspyOps, ctx: Ids) -> None:
    def config_errors(optimizer: str, metric: str, config: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"loc": ["config", k], "msg": "unknown key", "type": "extra"} for k in config]

    app.checks = Checks(optimization=config_errors)
    register(app, ctx)
    handle(app, RegisterDataset(dataset_id="bad", name="B", examples=[{"question": "q"}]), ctx())
    outcome = handle(
        app,
        OptimizeProgram(program_id="p", dataset_id="bad", optimizer=" ", config={"k": 1}),
        ctx(),
    )
    assert isinstance(outcome, Outcome)
    assert outcome.result_type == "CommandRejected"
    locs = [tuple(e["loc"]) for e in outcome.data["errors"]]
    assert ("optimizer",) in locs
    assert ("config", "k") in locs
    assert ("dataset", "examples", 0, "context") in locs
    outcome = handle(app, OptimizeProgram(program_id="p", dataset_id="none"), ctx())
    assert isinstance(outcome, Outcome)
    assert outcome.data["errors"][0]["loc"] == ["dataset_id"]


@pytest.mark.parametrize("status", ["draft", "training", "optimized", "deployed", "deprecated"])
def test_optimize_and_evaluate_from_every_status(app: DspyOps, ctx: Ids, status: str) -> None:
    program_in(app, ctx, status)
    add_dataset(app, ctx, dataset_id="more")
    planned = {
        "optimize": handle(app, OptimizeProgram(program_id="p", dataset_id="more"), ctx()),
        "evaluate": handle(app, EvaluateProgram(program_id="p", dataset_id="more"), ctx()),
    }
    for action, answer in planned.items():
        if (status, action) in ALLOWED:
            assert not isinstance(answer, Outcome), answer
        else:
            assert isinstance(answer, Outcome)
            assert answer.data["errors"][0]["type"] == "illegal_transition"
            assert answer.data["errors"][0]["loc"] == ["status"]


def test_a_deployed_program_optimized_again_gets_a_new_version_and_stays_deployed(
    app: DspyOps, ctx: Ids
) -> None:
    program_in(app, ctx, "deployed")
    plan = handle(app, OptimizeProgram(program_id="p", dataset_id="d-p"), ctx())
    assert isinstance(plan, OptimizationPlan)
    outcome = optimizations.complete_optimization(
        app, plan.optimization_id, state=STATE, baseline_score=0.5, optimized_score=0.9
    )
    assert outcome.result_type == "OptimizationCompleted", outcome
    assert outcome.data["version"] == 3
    program = app.program("p")
    assert (program.status, program.deployed_version, program.latest_version) == ("deployed", 2, 3)
    deployed = handle(app, DeployProgram(program_id="p", version=3), ctx())
    assert isinstance(deployed, Outcome)
    assert (deployed.data["status"], deployed.data["deployed_version"]) == ("deployed", 3)
    rolled = handle(app, RollbackProgram(program_id="p", version=2), ctx())
    assert (rolled.data["version"], rolled.data["previous_version"]) == (2, 3)
    again = handle(app, RollbackProgram(program_id="p", version=3), ctx())
    assert again.result_type == "ProgramRolledBack", again  # v3 served: back to it
    refused = handle(app, DeployProgram(program_id="p", version=3), ctx())
    assert isinstance(refused, Outcome)
    assert refused.data["errors"][0]["loc"] == ["version"]


def test_a_program_snapshot_from_before_redeploys_loads(app: DspyOps, ctx: Ids) -> None:
    program_in(app, ctx, "deployed")
    # As class version 3 wrote it: no served versions, only the deployed one.
    program = program_from_older_snapshot(app, "p", 3, "served_versions", "aliases")
    assert (program.status, program.deployed_version, program.served_versions) == (
        "deployed",
        2,
        [2],
    )


def test_a_redelivered_optimize_command_resumes_the_same_run(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    command = OptimizeProgram(program_id="p", dataset_id="d")
    first = handle(app, command, ctx("o1"))
    second = handle(app, command, ctx("o1"))
    assert isinstance(first, OptimizationPlan)
    assert isinstance(second, OptimizationPlan)
    assert (first.resumed, second.resumed) == (False, True)
    assert first.model_copy(update={"resumed": True}) == second


def test_cancel_ends_the_run_and_its_command(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    plan = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx("o1"))
    assert isinstance(plan, OptimizationPlan)
    assert app.optimization("o1").status != CANCELLED
    # The watcher's cheap poll: nothing since the start, then the cancel, then nothing new.
    nothing, read_to = optimizations.cancelled_since(app, "o1", 0)
    assert not nothing
    assert read_to > 0
    cancelled = handle(app, CancelOptimization(program_id="p", optimization_id="o1"), ctx())
    assert cancelled.result_type == "OptimizationCancelled"
    assert app.optimization("o1").status == CANCELLED
    seen, after_cancel = optimizations.cancelled_since(app, "o1", read_to)
    assert seen
    assert after_cancel > read_to
    assert optimizations.cancelled_since(app, "o1", after_cancel) == (False, after_cancel)
    assert app.stored_outcome("o1") == cancelled
    assert optimizations.record_progress(app, "o1", 2, 4, 0.5) is None
    late = optimizations.complete_optimization(
        app, "o1", state=STATE, baseline_score=0.1, optimized_score=0.9
    )
    assert late == cancelled
    assert app.program("p").latest_version == 1
    again = handle(app, CancelOptimization(program_id="p", optimization_id="o1"), ctx())
    assert again.data["errors"][0]["type"] == "illegal_transition"


def test_failed_optimization_and_out_of_range_scores(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    for run_id in ("o1", "o2"):
        plan = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx(run_id))
        assert isinstance(plan, OptimizationPlan)
    failed = optimizations.fail_optimization(app, "o1", "worker_lost", "the worker died")
    assert failed.data["error"] == {
        "code": "worker_lost",
        "message": "the worker died",
        "details": [],
    }
    bad = optimizations.complete_optimization(
        app, "o2", state=STATE, baseline_score=0.1, optimized_score=90
    )
    assert bad.result_type == "OptimizationFailed"
    assert bad.data["error"]["code"] == "invalid_result"
    assert app.program("p").latest_version == 1


def test_a_failed_optimization_keeps_its_best_candidate_as_a_version(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    for run_id in ("o1", "o2"):
        plan = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx(run_id))
        assert isinstance(plan, OptimizationPlan)
    best = optimizations.BestFound(state=STATE, baseline_score=0.25, optimized_score=0.75)

    kept = optimizations.fail_optimization(app, "o1", "budget_exceeded", "over budget", best=best)

    assert kept.result_type == "OptimizationFailed"
    assert kept.data["error"]["code"] == "budget_exceeded"
    assert kept.data["error"]["message"].startswith("over budget; kept its best candidate")
    assert (kept.data["kept_version"], kept.data["baseline_score"]) == (2, 0.25)
    assert kept.data["optimized_score"] == 0.75
    program = app.program("p")
    # The same version a completed run would have added.
    version = program.get_version(2)
    assert (version["source"], version["optimization_id"], version["state"]) == (
        "optimized",
        "o1",
        STATE,
    )
    assert (version["baseline_score"], version["optimized_score"]) == (0.25, 0.75)
    assert program.status == "optimized"
    run = app.optimization("o1")
    assert (run.status, run.kept_version, run.version_created) == ("failed", 2, None)
    assert app.stored_outcome(run.command_id) == kept
    # Scores out of range keep nothing, and say why.
    bad = optimizations.BestFound(state=STATE, baseline_score=0.25, optimized_score=75)
    failed = optimizations.fail_optimization(app, "o2", "budget_exceeded", "over", best=bad)
    assert failed.data["kept_version"] is None
    assert "not kept: optimized_score 75 is not in [0, 1]" in failed.data["error"]["message"]
    assert app.program("p").latest_version == 2


def test_run_failures_stored_before_kept_versions_load_with_none_kept(
    app: DspyOps, ctx: Ids
) -> None:
    program_in(app, ctx, "optimized")  # p, to evaluate
    register(app, ctx, "q")  # to optimize
    add_dataset(app, ctx)
    for command, run_id in [
        (OptimizeProgram(program_id="q", dataset_id="d"), "o-lost"),
        (EvaluateProgram(program_id="p", dataset_id="d"), "e-lost"),
    ]:
        assert isinstance(handle(app, command, ctx(run_id)), OptimizationPlan | EvaluationPlan)
    optimizations.fail_optimization(app, "o-lost", "worker_lost", "the worker died")
    evaluations.fail_evaluation(app, "e-lost", "metric_error", "boom")
    # Both kinds store their failure under Run.Failed's topic.
    stored_failures = [
        n for n in app.recorder.select_notifications(1, 1000) if n.topic.endswith(":Run.Failed")
    ]
    assert len(stored_failures) == 2
    for stored in stored_failures:
        state = app.mapper.transcoder.decode(stored.state)
        assert (state["class_version"], state["kept_version"]) == (2, None)
        # Version 1 (no class version, no kept_version) loads as keeping nothing.
        del state["class_version"], state["kept_version"]
        event = restored(app, stored, state)
        assert (event.code, event.kept_version) == (state["code"], None)


def test_evaluation_records_score_and_per_example_results(app: DspyOps, ctx: Ids) -> None:
    program_in(app, ctx, "optimized")
    add_dataset(app, ctx)
    plan = handle(app, EvaluateProgram(program_id="p", dataset_id="d", version=1), ctx("e1"))
    assert not isinstance(plan, Outcome)
    assert (plan.version, plan.state) == (1, None)
    assert plan.devset
    per_example = [{"index": i, "score": 1.0} for i in range(len(plan.devset))]
    outcome = evaluations.complete_evaluation(app, "e1", 1.0, per_example)
    assert outcome.result_type == "EvaluationCompleted"
    assert (outcome.data["score"], outcome.data["examples"]) == (1.0, len(per_example))
    assert app.evaluation("e1").per_example == per_example
    plan = handle(app, EvaluateProgram(program_id="p", dataset_id="d"), ctx("e2"))
    assert not isinstance(plan, Outcome)
    assert plan.version == 2
    assert (
        evaluations.fail_evaluation(app, "e2", "metric_error", "boom").result_type
        == "EvaluationFailed"
    )


def test_an_evaluation_records_how_many_examples_errored(app: DspyOps, ctx: Ids) -> None:
    program_in(app, ctx, "optimized")
    add_dataset(app, ctx)
    handle(app, EvaluateProgram(program_id="p", dataset_id="d", version=1), ctx("e1"))
    per_example: list[dict[str, Any]] = [
        {"index": 0, "score": 1.0, "outputs": {"answer": "a"}},
        {"index": 1, "score": 0.0, "outputs": None, "error": "lm_error"},
    ]
    outcome = evaluations.complete_evaluation(app, "e1", 0.5, per_example, errored=1)
    assert outcome.result_type == "EvaluationCompleted"
    assert (outcome.data["examples"], outcome.data["errored"]) == (2, 1)
    run = app.evaluation("e1")
    assert (run.errored, run.per_example) == (1, per_example)
    (stored,) = [
        n
        for n in app.recorder.select_notifications(1, 100)
        if n.topic.endswith(":Evaluation.Completed")
    ]
    state = app.mapper.transcoder.decode(stored.state)
    assert (state["class_version"], state["errored"]) == (3, 1)
    # A v1 event (no count, no class version) loads with the count unknown, not 0.
    del state["class_version"], state["errored"], state["provenance"]
    assert restored(app, stored, state).errored is None


def test_an_evaluation_with_an_unknown_metric_is_rejected_and_records_no_run(ctx: Ids) -> None:
    def metric_errors(metric: str) -> list[dict[str, Any]]:
        if metric == "bleu":
            return [{"loc": ["metric"], "msg": "unknown metric 'bleu'", "type": "unknown_metric"}]
        return []

    app = DspyOps(in_memory_env(), checks=Checks(metric=metric_errors))
    program_in(app, ctx, "optimized")
    add_dataset(app, ctx)
    outcome = handle(
        app, EvaluateProgram(program_id="p", dataset_id="d", metric="bleu"), ctx("e-bad")
    )
    assert isinstance(outcome, Outcome)
    assert outcome.result_type == "CommandRejected"
    assert outcome.data["errors"][0]["type"] == "unknown_metric"
    with pytest.raises(NotFound):
        app.evaluation("e-bad")


def _completion(plan: ExecutionPlan, c: CommandContext, answer: str) -> Completion:
    return Completion(
        plan=plan,
        ctx=c,
        outputs={"answer": answer, "confidence": 0.5},
        error=None,
        latency_ms=1.0,
        usage=Usage(),
        model="m",
        offline=False,
    )


def test_a_batch_of_completions_is_recorded_in_one_save(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    contexts = [ctx(f"batch-{n}") for n in range(3)]
    plans = [execute(app, c) for c in contexts]
    assert all(isinstance(p, ExecutionPlan) for p in plans)
    saves: list[int] = []
    original = app.save

    def counting_save(*objs: Any, **kw: Any) -> Any:
        saves.append(len(objs))
        return original(*objs, **kw)

    app.save = counting_save  # type: ignore[method-assign]
    outcomes = complete_executions(
        app,
        [_completion(p, c, f"a{n}") for n, (p, c) in enumerate(zip(plans, contexts, strict=True))],  # type: ignore[arg-type]
    )
    assert saves == [6]  # three executions and three handled records, one transaction
    assert [o.data["outputs"]["answer"] for o in outcomes] == ["a0", "a1", "a2"]
    assert all(app.execution(f"batch-{n}") is not None for n in range(3))


def test_a_batch_meeting_a_recorded_execution_falls_back_and_records_nothing_twice(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    first, second = ctx("dup-1"), ctx("dup-2")
    plan1, plan2 = execute(app, first), execute(app, second)
    assert isinstance(plan1, ExecutionPlan)
    assert isinstance(plan2, ExecutionPlan)
    done = complete_executions(app, [_completion(plan1, first, "original")])[0]
    length = log_length(app)
    # A redelivered command, planned before its first run was recorded, in a new batch.
    outcomes = complete_executions(
        app, [_completion(plan1, first, "again"), _completion(plan2, second, "new")]
    )
    assert outcomes[0] == done
    assert outcomes[1].data["outputs"]["answer"] == "new"
    assert topics_since(app, length) == ["Requested", "Succeeded", "Handled"]


def test_a_runs_budget_is_recorded_planned_and_old_requests_load_without_one(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    budget = RunBudget(max_lm_calls=50, max_usd=0.5)
    optimize = OptimizeProgram(program_id="p", dataset_id="d", budget=budget)
    evaluate = EvaluateProgram(program_id="p", dataset_id="d", budget=budget)

    plans = [handle(app, optimize, ctx("o-budget")), handle(app, evaluate, ctx("e-budget"))]

    for plan in plans:
        assert isinstance(plan, OptimizationPlan | EvaluationPlan), plan
        assert plan.budget == {"max_lm_calls": 50, "max_usd": 0.5}
    # Requests written before budgets (class version 2) load without a limit.
    # Later class versions: test_gates.py (split, role), test_pinned_runs.py (dataset).
    for run_type, class_version in (("Optimization.Requested", 5), ("Evaluation.Requested", 6)):
        stored = next(
            n for n in app.recorder.select_notifications(1, 1000) if n.topic.endswith(run_type)
        )
        state = app.mapper.transcoder.decode(stored.state)
        assert (state["class_version"], state["budget"]) == (class_version, budget.model_dump())
        state["class_version"] = 2
        del state["budget"]
        state.pop("split", None)
        state.pop("gate", None)
        del state["dataset_version"], state["judge"]
        assert restored(app, stored, state).budget is None


@pytest.mark.parametrize(
    "budget",
    [{"max_lm_calls": 0}, {"max_usd": 0}, {"max_usd": -1}, {"max_lm_calls": 1, "x": 1}],
)
def test_a_budget_names_a_positive_limit(budget: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RunBudget.model_validate(budget)
