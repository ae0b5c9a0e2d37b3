"""Executions: plan (checks, no writes) before the LM call, record once after it.

`plan_execution` is ExecuteProgram's handler: it reads the program and validates the
inputs, and writes nothing. The worker then runs the LM and hands back a `Completion`;
`complete_executions` records the request, its ending and the command's outcome in one
transaction, for many executions at once (group commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.budgets import ReservedByAnother, refusal
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.corpora import searched_corpora
from dspyops.aggregates.app.judges import execution_judge
from dspyops.aggregates.app.outcomes import (
    check_same_command,
    error_items,
    errors_of,
    handled_record,
)
from dspyops.aggregates.app.plans import ExecutionPlan, plan_fields
from dspyops.aggregates.app.split_guard import guard_of
from dspyops.aggregates.app.trace_context import carrying
from dspyops.aggregates.errors import IllegalTransition, InvalidInput, prefixed
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.ids import execution_uuid
from dspyops.aggregates.program import DEPRECATED
from dspyops.events.commands import ExecuteProgram
from dspyops.events.results import (
    ErrorInfo,
    ExecutionFailed,
    ExecutionSucceeded,
    Route,
    StepSummary,
    Usage,
)
from dspyops.events.text import clean, refused_text, storable
from dspyops.signatures import ValidationFailed

REASONING = "reasoning"


@dataclass(frozen=True)
class Completion:
    """One finished LM run, ready to be recorded."""

    plan: ExecutionPlan
    ctx: CommandContext
    outputs: dict[str, Any] | None
    error: ErrorInfo | None
    latency_ms: float
    usage: Usage
    model: str
    offline: bool
    # What runtime.trace recorded: the tree, its per-step summary, the step that raised.
    trace: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    failed_step: str | None = None
    # USD (runtime.pricing); None when the model's price is unknown.
    cost_usd: float | None = None


def plan_execution(app: DspyOps, cmd: ExecuteProgram, ctx: CommandContext) -> ExecutionPlan:
    """What to run for `cmd`; raises a DomainError when it cannot run."""
    execution_id = cmd.execution_id or ctx.command_id
    if cmd.version is not None and cmd.alias is not None:
        raise InvalidInput("give a version or an alias, not both", loc=["alias"])
    existing = app.execution(execution_id)
    program = app.program(cmd.program_id, copy=False)
    if program.status == DEPRECATED:
        raise IllegalTransition(
            f"program {cmd.program_id!r} is deprecated and runs no executions",
            loc=["program_id"],
        )
    if existing is not None:
        check_same_command(existing.command_id, ctx, "execution_id", execution_id)
        # The version it was planned with, wherever an alias or a split points now.
        version, route = program.get_version(existing.version_used), existing.route
    else:
        routing_key = cmd.routing_key or execution_id
        version, route = program.route(cmd.version, cmd.alias, routing_key)
    compiled = app.compiled(program, version)
    try:
        inputs = compiled.validate_inputs(cmd.inputs)
    except ValidationFailed as exc:
        raise InvalidInput(errors=prefixed(exc.errors, "inputs")) from exc
    budget = program.budget
    if budget is not None:
        # Last: nothing is reserved for an execution refused for another reason.
        try:
            refused = app.ledger.admit(
                cmd.program_id,
                execution_id,
                ctx.command_id,
                lambda spend: refusal(budget, cmd.program_id, spend),
            )
        except ReservedByAnother as exc:  # another command runs this execution id now
            check_same_command(exc.command_id, ctx, "execution_id", execution_id)
            raise
        if refused is not None:
            raise refused
    return ExecutionPlan(
        execution_id=execution_id,
        inputs=inputs,
        requested=existing is not None,
        budgeted=budget is not None,
        route=route,
        guard=None if existing is not None else guard_of(program, route),
        judge=execution_judge(app, program, execution_id, compiled),
        **plan_fields(program, version),
        corpora=searched_corpora(app, program),
    )


def complete_executions(app: DspyOps, completions: Sequence[Completion]) -> list[Outcome]:
    """Many executions recorded in ONE transaction (group commit), outcomes in order.

    The event store serialises writers, so one save per execution caps a worker at
    about one execution per insert; a batch pays that once. Executions whose request
    was stored earlier, and a batch that meets any conflict, go one by one through
    the careful path, which reads what is stored and never records twice.
    """
    # Each execution's events keep its own command's trace context.
    with carrying(*(c.ctx for c in completions)):
        return _complete_executions(app, completions)


def _complete_executions(app: DspyOps, completions: Sequence[Completion]) -> list[Outcome]:
    batch = [c for c in completions if not c.plan.requested]
    outcomes: dict[int, Outcome] = {}
    if len(batch) > 1:
        changed: list[Aggregate] = []
        built: dict[int, Outcome] = {}
        for index, completion in enumerate(completions):
            if completion.plan.requested:
                continue
            execution = _new_execution(completion.plan, completion.ctx)
            outcome = _finish(execution, completion)
            changed += [execution, handled_record(completion.ctx, outcome)]
            built[index] = outcome
        try:
            app.save(*changed)
            outcomes = built
        except RecordConflictError:
            app.conflicts += 1
    ended = [
        outcomes[i] if i in outcomes else _complete_one(app, c) for i, c in enumerate(completions)
    ]
    # After the save: a crash before this leaves the estimate counted, never less.
    costs = [(c.plan.execution_id, c.cost_usd) for c in completions if c.plan.budgeted]
    if costs:
        app.ledger.settle(costs)
    return ended


def _complete_one(app: DspyOps, completion: Completion) -> Outcome:
    plan, ctx = completion.plan, completion.ctx

    def work(first: bool) -> Outcome:
        # Right after planning, a fresh execution needs no reads; a race is a conflict.
        fresh = first and not plan.requested
        execution = _new_execution(plan, ctx) if fresh else _open_execution(app, plan, ctx)
        return app.record(ctx, _finish(execution, completion), execution)

    return app.attempt(ctx, work, plan.execution_id, trust_first=True)


def _open_execution(app: DspyOps, plan: ExecutionPlan, ctx: CommandContext) -> Execution:
    """The stored request of this command, or a new one (recorded with its ending)."""
    execution = app.replay(Execution, execution_uuid(plan.execution_id))
    if execution is None:
        return _new_execution(plan, ctx)
    check_same_command(execution.command_id, ctx, "execution_id", plan.execution_id)
    return execution


def _new_execution(plan: ExecutionPlan, ctx: CommandContext) -> Execution:
    return Execution(
        execution_id=plan.execution_id,
        program_id=plan.program_id,
        version=plan.version,
        inputs=plan.inputs,
        route=plan.route,
        **ctx.meta(),
    )


def _finish(execution: Execution, completion: Completion) -> Outcome:
    """Records the ending on `execution` (unsaved) and returns the command's outcome.

    Outputs are validated against the signature first: invalid outputs make the
    execution fail with code `output_invalid`, never succeed.
    """
    plan, ctx = completion.plan, completion.ctx
    outputs, failure = _checked_outputs(plan, completion.outputs, completion.error)
    # The trace holds LM text and inputs: made storable (NUL replaced).
    trace = storable(completion.trace) if completion.trace is not None else None
    steps = [StepSummary.model_validate(step) for step in completion.steps]
    result: ExecutionSucceeded | ExecutionFailed
    if failure is None:
        execution.succeed(
            outputs=outputs,
            latency_ms=completion.latency_ms,
            usage=completion.usage.model_dump(),
            model=completion.model,
            offline=completion.offline,
            trace=trace,
            cost_usd=completion.cost_usd,
            **ctx.meta(),
        )
        result = ExecutionSucceeded(
            execution_id=plan.execution_id,
            program_id=plan.program_id,
            version=plan.version,
            outputs=outputs,
            latency_ms=completion.latency_ms,
            usage=completion.usage,
            model=completion.model,
            offline=completion.offline,
            steps=steps,
            cost_usd=completion.cost_usd,
            route=_route(plan),
        )
    else:
        execution.fail(
            code=failure.code,
            message=failure.message,
            details=[item.model_dump() for item in failure.details],
            latency_ms=completion.latency_ms,
            model=completion.model or None,
            trace=trace,
            failed_step=completion.failed_step,
            usage=completion.usage.model_dump(),
            cost_usd=completion.cost_usd,
            **ctx.meta(),
        )
        result = ExecutionFailed(
            execution_id=plan.execution_id,
            program_id=plan.program_id,
            version=plan.version,
            error=failure,
            latency_ms=completion.latency_ms,
            steps=steps,
            failed_step=completion.failed_step,
            usage=completion.usage,
            cost_usd=completion.cost_usd,
            route=_route(plan),
        )
    return Outcome.of(result, plan.execution_id)


def _route(plan: ExecutionPlan) -> Route | None:
    return None if plan.route is None else Route.model_validate(plan.route)


def _checked_outputs(
    plan: ExecutionPlan, outputs: dict[str, Any] | None, error: ErrorInfo | None
) -> tuple[dict[str, Any], ErrorInfo | None]:
    if error is not None:
        # Error text comes from elsewhere (an LM, a library): made storable, never refused.
        return {}, error.model_copy(update={"message": clean(error.message)})
    if outputs is None:
        return {}, ErrorInfo(code="no_outputs", message="the program returned no outputs")
    compiled = plan.compiled()
    outputs = dict(outputs)
    # ChainOfThought adds its reasoning to the prediction: kept, but not a signature field.
    adds_reasoning = plan.module == "ChainOfThought" and REASONING not in compiled.output_names
    reasoning = outputs.pop(REASONING, None) if adds_reasoning else None
    try:
        validated = compiled.validate_outputs(outputs)
        # An LM can answer text PostgreSQL cannot store (NUL): not a valid output either.
        refused = [
            {"loc": list(path), "msg": problem, "type": "invalid_text"}
            for path, problem in refused_text(validated)
        ] + [
            {"loc": [name], "msg": "not a finite number", "type": "finite_number"}
            for name, value in validated.items()
            if storable(value) != value and not list(refused_text(value))
        ]
        if refused:
            raise ValidationFailed(refused)
    except ValidationFailed as exc:
        # The errors' locations hold keys the LM chose: made storable too.
        return {}, ErrorInfo(
            code="output_invalid",
            message=clean(f"outputs do not match the signature: {exc}"),
            details=error_items(storable(prefixed(errors_of(exc), "outputs"))),
        )
    if reasoning is not None:
        validated[REASONING] = clean(str(reasoning))
    return validated, None
