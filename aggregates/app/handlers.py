"""The one command table: every command type -> the function that handles it.

`handle(app, command, ctx)` is how anything (the worker, tests, benches) applies a
command. A handler returns the command's terminal `Outcome`, or, for the long-running
commands (ExecuteProgram, OptimizeProgram, EvaluateProgram, a DeployProgram or a
SetTrafficSplit with a gate), the `Plan` of the work the worker then does and records
through `executions`, `optimizations`, `evaluations` and, for a gate, `finish_gate`.

Around every handler, `DspyOps.attempt` gives the same guarantees: a command handled
before returns its stored outcome and records nothing; a domain error becomes a stored
`CommandRejected`; an optimistic-concurrency conflict re-runs the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, overload
from uuid import UUID

from dspyops.aggregates.app import (
    corpora,
    datasets,
    evaluations,
    executions,
    feedback,
    gates,
    optimizations,
    programs,
    splits,
)
from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.gates import CURRENT, gate_run_id
from dspyops.aggregates.app.outcomes import payload_digest, run_context, subject_of
from dspyops.aggregates.app.plans import (
    EvaluationPlan,
    ExecutionPlan,
    GatePlan,
    OptimizationPlan,
    Plan,
)
from dspyops.aggregates.app.trace_context import carrying
from dspyops.aggregates.errors import RateLimited
from dspyops.aggregates.ids import (
    command_uuid,
    evaluation_uuid,
    execution_uuid,
    optimization_uuid,
)
from dspyops.events.commands import (
    COMMAND_TYPES,
    GATED_COMMANDS,
    AppendDocuments,
    AppendExamples,
    CancelGate,
    CancelOptimization,
    Command,
    DeployProgram,
    DeprecateProgram,
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    PromoteExecutions,
    RecordFeedback,
    RegisterCorpus,
    RegisterDataset,
    RegisterProgram,
    RemoveAlias,
    RemoveDocuments,
    RollbackProgram,
    SetAlias,
    SetBudget,
    SetOnlineEvaluation,
    SetTrafficSplit,
    TrainProgram,
    UpdateProgram,
)

Handler = Callable[[DspyOps, Any, CommandContext], Outcome | Plan]

COMMAND_HANDLERS: dict[type[Command], Handler] = {
    RegisterProgram: programs.register_program,
    UpdateProgram: programs.update_program,
    TrainProgram: programs.train_program,
    DeployProgram: programs.deploy_program,
    RollbackProgram: programs.rollback_program,
    DeprecateProgram: programs.deprecate_program,
    SetBudget: programs.set_budget,
    SetOnlineEvaluation: programs.set_online_evaluation,
    SetAlias: programs.set_alias,
    RemoveAlias: programs.remove_alias,
    SetTrafficSplit: splits.set_traffic_split,
    RegisterDataset: datasets.register_dataset,
    AppendExamples: datasets.append_examples,
    PromoteExecutions: datasets.promote_executions,
    RegisterCorpus: corpora.register_corpus,
    AppendDocuments: corpora.append_documents,
    RemoveDocuments: corpora.remove_documents,
    ExecuteProgram: executions.plan_execution,
    OptimizeProgram: optimizations.plan_optimization,
    EvaluateProgram: evaluations.plan_evaluation,
    CancelOptimization: optimizations.cancel_optimization,
    CancelGate: gates.cancel_gate,
    RecordFeedback: feedback.record_feedback,
}

# A command type without a handler would be accepted on the wire and never answered.
assert set(COMMAND_HANDLERS) == set(COMMAND_TYPES.values()), "every command needs a handler"

# Gated commands (events.commands.GATED_COMMANDS) -> what applies or refuses the change
# once the gate's runs ended (aggregates/app/gates.py).
GATE_FINISHERS: dict[str, Callable[[DspyOps, GatePlan, CommandContext], Outcome]] = {
    "DeployProgram": programs.finish_gated_deploy,
    "SetTrafficSplit": splits.finish_gated_split,
}
assert set(GATE_FINISHERS) == {cls.__name__ for cls in GATED_COMMANDS}, "a gate needs a finisher"


def _started_before(app: DspyOps, command: Command, ctx: CommandContext) -> bool:
    """Whether this command already started its execution, run or gate: a redelivery
    after a crash, its outcome still to come. It goes on whatever its producer's rate
    (refused now, the run it started would never end). Asked only under a rate limit."""
    subject = subject_of(command, ctx)
    if isinstance(command, ExecuteProgram):
        started = execution_uuid(subject)
    elif isinstance(command, OptimizeProgram):
        started = optimization_uuid(subject)
    elif isinstance(command, EvaluateProgram):
        started = evaluation_uuid(subject)
    elif isinstance(command, GATED_COMMANDS) and getattr(command, "gate", None) is not None:
        # A gate's runs are saved together: its `current` run stands for all of them.
        started = evaluation_uuid(gate_run_id(ctx.command_id, CURRENT))
    else:
        return False
    return bool(app.recorder.select_events(started, limit=1))


def finish_gate(app: DspyOps, plan: GatePlan) -> Outcome:
    """End a gated command whose gate's runs ended: its one outcome, stored (a rejection
    too: the change was checked again), or the outcome stored before (a redelivery).

    The command's context is the one its runs recorded (id, type, payload digest, actor),
    as for every run's end.
    """
    ctx = run_context(app.evaluation(plan.current_evaluation_id), plan.command_type)
    finisher = GATE_FINISHERS[plan.command_type]
    return app.attempt(ctx, lambda _: finisher(app, plan, ctx), plan.program_id)


def for_command(command: Command, ctx: CommandContext) -> CommandContext:
    """`ctx` completed with the command's type and payload digest.

    The worker hands this context on to the job that runs a plan, so what the job records
    at the end (the command's HandledCommand) carries the same digest.
    """
    if ctx.command_type and ctx.payload_digest:
        return ctx
    update = {"command_type": ctx.command_type or type(command).__name__}
    return ctx.model_copy(update={**update, "payload_digest": payload_digest(command)})


# Commands whose handler always ends them: an outcome, never a plan.
ImmediateCommand = (
    RegisterProgram
    | UpdateProgram
    | TrainProgram
    | RollbackProgram
    | DeprecateProgram
    | SetBudget
    | SetOnlineEvaluation
    | SetAlias
    | RemoveAlias
    | RegisterDataset
    | AppendExamples
    | PromoteExecutions
    | RegisterCorpus
    | AppendDocuments
    | RemoveDocuments
    | CancelOptimization
    | CancelGate
    | RecordFeedback
)


# What each command can return, for callers' type checks: a plan only for the three
# long-running commands and a gated deploy or split (or their outcome, when handled
# before or rejected).
@overload
def handle(app: DspyOps, command: ImmediateCommand, ctx: CommandContext) -> Outcome: ...
@overload
def handle(
    app: DspyOps, command: ExecuteProgram, ctx: CommandContext
) -> Outcome | ExecutionPlan: ...
@overload
def handle(
    app: DspyOps, command: OptimizeProgram, ctx: CommandContext
) -> Outcome | OptimizationPlan: ...
@overload
def handle(
    app: DspyOps, command: EvaluateProgram, ctx: CommandContext
) -> Outcome | EvaluationPlan: ...
@overload
def handle(
    app: DspyOps, command: DeployProgram | SetTrafficSplit, ctx: CommandContext
) -> Outcome | GatePlan: ...
@overload
def handle(app: DspyOps, command: Command, ctx: CommandContext) -> Outcome | Plan: ...
def handle(app: DspyOps, command: Command, ctx: CommandContext) -> Outcome | Plan:
    """Apply `command` once: its outcome (stored), or the plan of the work it asks for."""
    handler = COMMAND_HANDLERS[type(command)]
    ctx = for_command(command, ctx)

    def work(_first: bool) -> Outcome | Plan:
        # After the stored-outcome lookup: a redelivered command gets its outcome, not a
        # refusal, and spends none of its producer's rate. Only a producer's commands
        # (their envelope's `source`) are limited, not the worker's own (a judge's score).
        admission = app.checks.admission
        if admission is not None and ctx.source and not _started_before(app, command, ctx):
            refused = admission(ctx.command_id, ctx.source, ctx.actor)
            if refused:
                raise RateLimited(errors=refused)
        return handler(app, command, ctx)

    with carrying(ctx):  # the events it records keep its trace context
        return app.attempt(ctx, work, subject_of(command, ctx))


def handle_many(
    app: DspyOps, items: Sequence[tuple[ExecuteProgram, CommandContext]]
) -> list[Outcome | Plan | Exception]:
    """`handle` for executions that arrived together, in one store call: what each looks
    up first (`_first_reads`) is read in one round trip and their program once
    (`DspyOps.reading_ahead`). Each gets its own outcome, plan, or the exception `handle`
    raised for it (a transient outage, a budget's `Wait`), in order; the same guarantees
    as one by one."""
    ahead = [i for command, ctx in items for i in _first_reads(command, ctx)]
    results: list[Outcome | Plan | Exception] = []
    with app.reading_ahead(ahead):
        for command, ctx in items:
            try:
                results.append(handle(app, command, ctx))
            except Exception as exc:
                results.append(exc)
    return results


def _first_reads(command: ExecuteProgram, ctx: CommandContext) -> list[UUID]:
    """What handling an execution reads first, mostly absent: its command's stored
    outcome (`DspyOps.attempt`) and its execution (`executions.plan_execution`)."""
    execution_id = command.execution_id or ctx.command_id
    return [command_uuid(ctx.command_id), execution_uuid(execution_id)]
