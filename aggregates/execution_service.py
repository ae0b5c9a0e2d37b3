"""Executions: plan (checks, no writes) before the LM call, record once after it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError
from pydantic import BaseModel

from dspyops.aggregates.context import CommandContext, Outcome
from dspyops.aggregates.errors import IllegalTransition, InvalidInput, prefixed
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.ids import execution_uuid
from dspyops.aggregates.outcomes import check_same_command, error_items, handled_record, typed
from dspyops.aggregates.plans import ExecutionPlan
from dspyops.aggregates.program import DEPRECATED, Program, ProgramVersion
from dspyops.aggregates.service import Service
from dspyops.events.commands import ExecuteProgram
from dspyops.events.results import ErrorInfo, ExecutionFailed, ExecutionSucceeded, Usage
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


class ExecutionService(Service):
    def plan_execution(self, cmd: ExecuteProgram, ctx: CommandContext) -> ExecutionPlan | Outcome:
        """What to run for `cmd`, or its outcome if it was handled or is rejected."""
        ctx = typed(ctx, "ExecuteProgram")
        execution_id = cmd.execution_id or ctx.command_id
        return self.attempt(
            ctx, lambda _: self._plan_execution(cmd, ctx, execution_id), execution_id
        )

    def _plan_execution(
        self, cmd: ExecuteProgram, ctx: CommandContext, execution_id: str
    ) -> ExecutionPlan:
        existing = self.replay(Execution, execution_uuid(execution_id))
        requested_version = cmd.version
        if existing is not None:
            check_same_command(existing.command_id, ctx, "execution_id", execution_id)
            requested_version = existing.version_used
        program = self.program(cmd.program_id, copy=False)
        if program.status == DEPRECATED:
            raise IllegalTransition(
                f"program {cmd.program_id!r} is deprecated and runs no executions",
                loc=["program_id"],
            )
        version = program.serving_version(requested_version)
        compiled = self.compiled(program, version)
        try:
            inputs = compiled.validate_inputs(cmd.inputs)
        except ValidationFailed as exc:
            raise InvalidInput(errors=prefixed(exc.errors, "inputs")) from exc
        return ExecutionPlan(
            execution_id=execution_id,
            inputs=inputs,
            requested=existing is not None,
            **plan_fields(program, version),
        )

    def complete_execution(
        self,
        plan: ExecutionPlan,
        ctx: CommandContext,
        *,
        outputs: dict[str, Any] | None = None,
        error: ErrorInfo | tuple[str, str] | None = None,
        latency_ms: float,
        usage: BaseModel | Mapping[str, int] | None = None,
        model: str = "",
        offline: bool = False,
    ) -> Outcome:
        """Record the run's request and result (one save) and return the terminal outcome.

        Outputs are validated against the signature first: invalid outputs make the
        execution fail with code `output_invalid`, never succeed. `error` is an ErrorInfo
        or a `(code, message)` pair; `usage` any model or mapping of Usage's token counts.
        """
        completion = Completion(
            plan=plan,
            ctx=typed(ctx, "ExecuteProgram"),
            outputs=outputs,
            error=_error_info(error),
            latency_ms=latency_ms,
            usage=_usage(usage),
            model=model,
            offline=offline,
        )
        return self._complete_one(completion)

    def complete_executions(self, completions: Sequence[Completion]) -> list[Outcome]:
        """Many executions recorded in ONE transaction (group commit), outcomes in order.

        The event store serialises writers, so one save per execution caps a worker at
        about one execution per insert; a batch pays that once. Executions whose request
        was stored earlier, and a batch that meets any conflict, go one by one through
        the careful path, which reads what is stored and never records twice.
        """
        batch = [c for c in completions if not c.plan.requested]
        outcomes: dict[int, Outcome] = {}
        if len(batch) > 1:
            changed: list[Aggregate] = []
            built: dict[int, Outcome] = {}
            for index, completion in enumerate(completions):
                if completion.plan.requested:
                    continue
                execution = self._new_execution(completion.plan, completion.ctx)
                outcome = self._finish_execution(execution, completion)
                changed += [execution, handled_record(completion.ctx, outcome)]
                built[index] = outcome
            try:
                self.save(*changed)
                outcomes = built
            except RecordConflictError:
                self.conflicts += 1
        return [
            outcomes[i] if i in outcomes else self._complete_one(c)
            for i, c in enumerate(completions)
        ]

    def _complete_one(self, completion: Completion) -> Outcome:
        plan, ctx = completion.plan, completion.ctx

        def work(first: bool) -> Outcome:
            # Right after planning, a fresh execution needs no reads; a race is a conflict.
            fresh = first and not plan.requested
            execution = self._new_execution(plan, ctx) if fresh else self._open_execution(plan, ctx)
            return self.record(ctx, self._finish_execution(execution, completion), execution)

        return self.attempt(ctx, work, plan.execution_id, trust_first=True)

    def _finish_execution(self, execution: Execution, completion: Completion) -> Outcome:
        """Records the ending on `execution` (unsaved) and returns the command's outcome."""
        plan, ctx = completion.plan, completion.ctx
        validated, failure = self._checked_outputs(plan, completion.outputs, completion.error)
        if failure is None:
            result: ExecutionSucceeded | ExecutionFailed = _succeed(
                execution,
                plan,
                ctx,
                validated,
                completion.latency_ms,
                completion.usage,
                completion.model,
                completion.offline,
            )
        else:
            result = _fail(execution, plan, ctx, failure, completion.latency_ms, completion.model)
        return Outcome.of(result, plan.execution_id)

    def _open_execution(self, plan: ExecutionPlan, ctx: CommandContext) -> Execution:
        """The stored request of this command, or a new one (recorded with its ending)."""
        execution = self.replay(Execution, execution_uuid(plan.execution_id))
        if execution is None:
            return self._new_execution(plan, ctx)
        check_same_command(execution.command_id, ctx, "execution_id", plan.execution_id)
        return execution

    def _new_execution(self, plan: ExecutionPlan, ctx: CommandContext) -> Execution:
        return Execution(
            execution_id=plan.execution_id,
            program_id=plan.program_id,
            version=plan.version,
            inputs=plan.inputs,
            **ctx.meta(),
        )

    def _checked_outputs(
        self, plan: ExecutionPlan, outputs: dict[str, Any] | None, error: ErrorInfo | None
    ) -> tuple[dict[str, Any], ErrorInfo | None]:
        if error is not None:
            return {}, error
        if outputs is None:
            return {}, ErrorInfo(code="no_outputs", message="the program returned no outputs")
        compiled = plan.compiled()
        outputs = dict(outputs)
        # ChainOfThought adds its reasoning to the prediction: kept, but not a signature field.
        adds_reasoning = plan.module == "ChainOfThought" and REASONING not in compiled.output_names
        reasoning = outputs.pop(REASONING, None) if adds_reasoning else None
        try:
            validated = compiled.validate_outputs(outputs)
        except ValidationFailed as exc:
            return {}, ErrorInfo(
                code="output_invalid",
                message=f"outputs do not match the signature: {exc}",
                details=error_items(prefixed(exc.errors, "outputs")),
            )
        if reasoning is not None:
            validated[REASONING] = str(reasoning)
        return validated, None


def _error_info(error: ErrorInfo | tuple[str, str] | None) -> ErrorInfo | None:
    if error is None or isinstance(error, ErrorInfo):
        return error
    code, message = error
    return ErrorInfo(code=code, message=message)


def _usage(usage: BaseModel | Mapping[str, int] | None) -> Usage:
    if usage is None:
        return Usage()
    counts = usage.model_dump() if isinstance(usage, BaseModel) else dict(usage)
    return Usage(**{name: int(counts.get(name) or 0) for name in Usage.model_fields})


def plan_fields(program: Program, version: ProgramVersion) -> dict[str, Any]:
    return {
        "program_id": program.program_id,
        "version": version["number"],
        "signature": program.signature,
        "module": program.module,
        "instructions": version["instructions"],
        "field_descriptions": dict(program.field_descriptions),
        "state": version["state"],
        "lm": program.lm,
    }


def _succeed(
    execution: Execution,
    plan: ExecutionPlan,
    ctx: CommandContext,
    outputs: dict[str, Any],
    latency_ms: float,
    usage: Usage,
    model: str,
    offline: bool,
) -> ExecutionSucceeded:
    execution.succeed(
        outputs=outputs,
        latency_ms=latency_ms,
        usage=usage.model_dump(),
        model=model,
        offline=offline,
        **ctx.meta(),
    )
    return ExecutionSucceeded(
        execution_id=plan.execution_id,
        program_id=plan.program_id,
        version=plan.version,
        outputs=outputs,
        latency_ms=latency_ms,
        usage=usage,
        model=model,
        offline=offline,
    )


def _fail(
    execution: Execution,
    plan: ExecutionPlan,
    ctx: CommandContext,
    error: ErrorInfo,
    latency_ms: float,
    model: str,
) -> ExecutionFailed:
    execution.fail(
        code=error.code,
        message=error.message,
        details=[item.model_dump() for item in error.details],
        latency_ms=latency_ms,
        model=model or None,
        **ctx.meta(),
    )
    return ExecutionFailed(
        execution_id=plan.execution_id,
        program_id=plan.program_id,
        version=plan.version,
        error=error,
        latency_ms=latency_ms,
    )
