"""DspyOps: the application service that turns commands into stored events.

Every command ends in exactly one stored `HandledCommand` holding its terminal outcome,
saved in the same transaction as the aggregates it changed. A redelivered command finds
that record and gets the same outcome back; nothing new is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import EnvType
from pydantic import ValidationError

from aggregates.context import CommandContext, Outcome
from aggregates.dataset import DEV, TRAIN, Dataset
from aggregates.errors import (
    AlreadyExists,
    DomainError,
    ErrorDict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    prefixed,
)
from aggregates.evaluation import Evaluation
from aggregates.execution import REQUESTED, Execution
from aggregates.handled import HandledCommand
from aggregates.ids import (
    command_uuid,
    dataset_uuid,
    evaluation_uuid,
    execution_uuid,
    optimization_uuid,
    program_uuid,
)
from aggregates.optimization import Optimization
from aggregates.plans import EvaluationPlan, ExecutionPlan, OptimizationPlan
from aggregates.program import DEPRECATED, Program, ProgramVersion
from aggregates.run import CANCELLED, RUNNING, Run
from events.commands import Command, EvaluateProgram, ExecuteProgram, OptimizeProgram
from events.results import (
    CommandRejected,
    ErrorInfo,
    ErrorItem,
    EvaluationCompleted,
    EvaluationFailed,
    ExecutionFailed,
    ExecutionSucceeded,
    OptimizationCancelled,
    OptimizationCompleted,
    OptimizationFailed,
    OptimizationProgress,
    Usage,
)
from signatures import CompiledSignature, SignatureError, ValidationFailed, compile_signature

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)
ConfigValidator = Callable[[str, str, dict[str, Any]], list[ErrorDict]]

# What a command can get wrong: each becomes a CommandRejected outcome.
REJECTIONS = (DomainError, SignatureError, ValidationFailed, ValidationError)


class ConflictsExhausted(RuntimeError):
    """Concurrent writers kept winning; the command was not applied and may be retried."""


def no_config_errors(optimizer: str, metric: str, config: dict[str, Any]) -> list[ErrorDict]:
    return []


class DspyOps(Application):
    # Programs live long and collect many events; executions and runs stay short.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Program: 50}
    # Retries after an optimistic-concurrency conflict before giving up.
    max_attempts = 8
    # Programs are read on every execution: keep them cached and fast-forward on read.
    default_cache_maxsize = "1000"

    def __init__(
        self, env: EnvType | None = None, *, validate_config: ConfigValidator | None = None
    ) -> None:
        env = dict(env or {})
        env.setdefault(self.AGGREGATE_CACHE_MAXSIZE, self.default_cache_maxsize)
        super().__init__(env)
        self.validate_config = validate_config or no_config_errors
        # Optimistic-concurrency conflicts met and retried: a health signal for workers.
        self.conflicts = 0

    # --- commands -----------------------------------------------------------------

    def handle(self, command: Command, ctx: CommandContext) -> Outcome:
        """Apply `command` once: run its handler, or return the outcome stored before."""
        from aggregates.handlers import COMMAND_HANDLERS

        handler = COMMAND_HANDLERS[type(command)]
        if not ctx.command_type:
            ctx = ctx.model_copy(update={"command_type": type(command).__name__})
        return self.attempt(ctx, lambda: handler(self, command, ctx), subject_of(command, ctx))

    def attempt(self, ctx: CommandContext, work: Callable[[], T], subject: str) -> T | Outcome:
        """Run `work` until it saves without conflict; a domain error is stored as rejected.

        After a conflict the stored outcome is looked up again: a conflict on the
        HandledCommand means another worker finished this command first.
        """
        for _ in range(self.max_attempts):
            stored = self.stored_outcome(ctx.command_id)
            if stored is not None:
                return stored
            try:
                return work()
            except RecordConflictError:
                self.conflicts += 1
                continue
            except REJECTIONS as exc:
                try:
                    return self.record(ctx, rejected(ctx, exc, subject))
                except RecordConflictError:
                    self.conflicts += 1
                    continue
        raise ConflictsExhausted(f"command {ctx.command_id!r}: {self.max_attempts} conflicts")

    def record(self, ctx: CommandContext, outcome: Outcome, *changed: Aggregate) -> Outcome:
        """Save the changed aggregates and the command's outcome in one transaction."""
        self.save(*changed, handled_record(ctx, outcome))
        return outcome

    def stored_outcome(self, command_id: str) -> Outcome | None:
        handled = self.find(HandledCommand, command_uuid(command_id))
        if handled is None:
            return None
        return Outcome(result_type=handled.result_type, subject=handled.subject, data=handled.data)

    # --- reading aggregates -----------------------------------------------------------

    def find(self, cls: type[A], aggregate_id: UUID, *, copy: bool = True) -> A | None:
        """The aggregate or None; `copy=False` shares the cached object: read it only."""
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, deepcopy_from_cache=copy)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate_id} is a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    def program(self, program_id: str, *, copy: bool = True) -> Program:
        program = self.find(Program, program_uuid(program_id), copy=copy)
        if program is None:
            raise NotFound(f"no program {program_id!r}", loc=["program_id"])
        return program

    def dataset(self, dataset_id: str, *, copy: bool = True) -> Dataset:
        dataset = self.find(Dataset, dataset_uuid(dataset_id), copy=copy)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}", loc=["dataset_id"])
        return dataset

    def optimization(self, optimization_id: str, *, copy: bool = True) -> Optimization:
        run = self.find(Optimization, optimization_uuid(optimization_id), copy=copy)
        if run is None:
            raise NotFound(f"no optimization {optimization_id!r}", loc=["optimization_id"])
        return run

    def evaluation(self, evaluation_id: str, *, copy: bool = True) -> Evaluation:
        run = self.find(Evaluation, evaluation_uuid(evaluation_id), copy=copy)
        if run is None:
            raise NotFound(f"no evaluation {evaluation_id!r}", loc=["evaluation_id"])
        return run

    def execution(self, execution_id: str) -> Execution | None:
        return self.find(Execution, execution_uuid(execution_id))

    # --- executions -------------------------------------------------------------------

    def plan_execution(self, cmd: ExecuteProgram, ctx: CommandContext) -> ExecutionPlan | Outcome:
        """What to run for `cmd`, or its outcome if it was handled or is rejected."""
        ctx = _typed(ctx, "ExecuteProgram")
        execution_id = cmd.execution_id or ctx.command_id
        return self.attempt(ctx, lambda: self._plan_execution(cmd, ctx, execution_id), execution_id)

    def _plan_execution(
        self, cmd: ExecuteProgram, ctx: CommandContext, execution_id: str
    ) -> ExecutionPlan:
        existing = self.find(Execution, execution_uuid(execution_id), copy=False)
        requested_version = cmd.version
        if existing is not None:
            _check_same_command(existing.command_id, ctx, "execution_id", execution_id)
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
            execution_id=execution_id, inputs=inputs, **_plan_fields(program, version)
        )

    def complete_execution(
        self,
        plan: ExecutionPlan,
        ctx: CommandContext,
        *,
        outputs: dict[str, Any] | None = None,
        error: ErrorInfo | None = None,
        latency_ms: float,
        usage: Usage | None = None,
        model: str = "",
        offline: bool = False,
    ) -> Outcome:
        """Record the run's request and result (one save) and return the terminal outcome.

        Outputs are validated against the signature first: invalid outputs make the
        execution fail with code `output_invalid`, never succeed.
        """
        ctx = _typed(ctx, "ExecuteProgram")

        def work() -> Outcome:
            execution = self.find(Execution, execution_uuid(plan.execution_id))
            if execution is None:
                execution = Execution(
                    execution_id=plan.execution_id,
                    program_id=plan.program_id,
                    version=plan.version,
                    inputs=plan.inputs,
                    **ctx.meta(),
                )
            else:
                _check_same_command(execution.command_id, ctx, "execution_id", plan.execution_id)
            validated, failure = self._checked_outputs(plan, outputs, error)
            result: ExecutionSucceeded | ExecutionFailed
            if failure is None:
                tokens = (usage or Usage()).model_dump()
                execution.succeed(
                    outputs=validated,
                    latency_ms=latency_ms,
                    usage=tokens,
                    model=model,
                    offline=offline,
                    **ctx.meta(),
                )
                result = ExecutionSucceeded(
                    execution_id=plan.execution_id,
                    program_id=plan.program_id,
                    version=plan.version,
                    outputs=validated,
                    latency_ms=latency_ms,
                    usage=Usage(**tokens),
                    model=model,
                    offline=offline,
                )
            else:
                execution.fail(
                    code=failure.code,
                    message=failure.message,
                    details=[item.model_dump() for item in failure.details],
                    latency_ms=latency_ms,
                    model=model or None,
                    **ctx.meta(),
                )
                result = ExecutionFailed(
                    execution_id=plan.execution_id,
                    program_id=plan.program_id,
                    version=plan.version,
                    error=failure,
                    latency_ms=latency_ms,
                )
            return self.record(ctx, Outcome.of(result, plan.execution_id), execution)

        return self.attempt(ctx, work, plan.execution_id)

    def _checked_outputs(
        self, plan: ExecutionPlan, outputs: dict[str, Any] | None, error: ErrorInfo | None
    ) -> tuple[dict[str, Any], ErrorInfo | None]:
        if error is not None:
            return {}, error
        if outputs is None:
            return {}, ErrorInfo(code="no_outputs", message="the program returned no outputs")
        try:
            return self.compiled_for_plan(plan).validate_outputs(outputs), None
        except ValidationFailed as exc:
            return {}, ErrorInfo(
                code="output_invalid",
                message=f"outputs do not match the signature: {exc}",
                details=error_items(prefixed(exc.errors, "outputs")),
            )

    # --- signatures -------------------------------------------------------------------

    def compiled(self, program: Program, version: ProgramVersion) -> CompiledSignature:
        # compile_signature caches by its arguments, so this is cheap per execution.
        return compile_signature(
            program.signature,
            instructions=version["instructions"],
            descriptions=program.field_descriptions,
        )

    def compiled_for_plan(self, plan: ExecutionPlan) -> CompiledSignature:
        return compile_signature(
            plan.signature, instructions=plan.instructions, descriptions=plan.field_descriptions
        )

    # --- optimizations ------------------------------------------------------------------

    def plan_optimization(
        self, cmd: OptimizeProgram, ctx: CommandContext
    ) -> OptimizationPlan | Outcome:
        """Check the request, record the run as requested and running, and say what to run."""
        ctx = _typed(ctx, "OptimizeProgram")
        run_id = cmd.optimization_id or ctx.command_id
        return self.attempt(ctx, lambda: self._plan_optimization(cmd, ctx, run_id), run_id)

    def _plan_optimization(
        self, cmd: OptimizeProgram, ctx: CommandContext, run_id: str
    ) -> OptimizationPlan:
        existing = self.find(Optimization, optimization_uuid(run_id))
        if existing is not None:
            _check_same_command(existing.command_id, ctx, "optimization_id", run_id)
            return self._optimization_plan(existing, resumed=True)
        program = self.program(cmd.program_id)
        program.check("optimize")
        errors = _named("optimizer", cmd.optimizer) + _named("metric", cmd.metric)
        errors += self.validate_config(cmd.optimizer, cmd.metric, cmd.config)
        errors += self._dataset_problems(program, program.versions[-1], cmd.dataset_id)
        if errors:
            raise InvalidInput(errors=errors)
        run = Optimization(
            optimization_id=run_id,
            program_id=cmd.program_id,
            dataset_id=cmd.dataset_id,
            base_version=program.latest_version,
            optimizer=cmd.optimizer,
            metric=cmd.metric,
            config=cmd.config,
            **ctx.meta(),
        )
        run.start(**ctx.meta())
        # No HandledCommand yet: the command's terminal outcome comes when the run ends.
        self.save(run)
        return self._optimization_plan(run, resumed=False)

    def _dataset_problems(
        self, program: Program, version: ProgramVersion, dataset_id: str
    ) -> list[ErrorDict]:
        try:
            dataset = self.dataset(dataset_id, copy=False)
        except NotFound as exc:
            return exc.errors
        return prefixed(dataset.validate_against(self.compiled(program, version)), "dataset")

    def _optimization_plan(self, run: Optimization, *, resumed: bool) -> OptimizationPlan:
        program = self.program(run.program_id, copy=False)
        dataset = self.dataset(run.dataset_id, copy=False)
        return OptimizationPlan(
            optimization_id=run.optimization_id,
            dataset_id=run.dataset_id,
            trainset=dataset.split(TRAIN),
            devset=dataset.split(DEV),
            optimizer=run.optimizer,
            metric=run.metric,
            config=run.config,
            resumed=resumed,
            **_plan_fields(program, program.get_version(run.base_version)),
        )

    def record_progress(
        self, optimization_id: str, step: int, total: int, best_score: float | None = None
    ) -> Outcome | None:
        """Record progress of a running optimization; None when it is no longer running."""
        for _ in range(self.max_attempts):
            run = self.optimization(optimization_id)
            if run.status != RUNNING:
                return None
            run.progress(step, total, best_score, **run.origin())
            try:
                self.save(run)
            except RecordConflictError:
                continue
            result = OptimizationProgress(
                optimization_id=optimization_id,
                program_id=run.program_id,
                step=step,
                total=total,
                best_score=best_score,
            )
            return Outcome.of(result, optimization_id)
        raise ConflictsExhausted(f"optimization {optimization_id!r}: progress kept conflicting")

    def is_cancelled(self, optimization_id: str) -> bool:
        return self.optimization(optimization_id, copy=False).status == CANCELLED

    def complete_optimization(
        self,
        optimization_id: str,
        *,
        state: dict[str, Any],
        baseline_score: float,
        optimized_score: float,
    ) -> Outcome:
        """Add the optimized program version, status -> optimized; one save with the outcome."""

        def finish(run: Run, ctx: CommandContext) -> Outcome:
            assert isinstance(run, Optimization)
            bad = _score_errors(baseline_score=baseline_score, optimized_score=optimized_score)
            program = self.program(run.program_id)
            if bad:
                return self._fail_run(run, ctx, "invalid_result", bad[0]["msg"])
            try:
                version = program.add_optimized_version(
                    optimization_id=run.optimization_id,
                    state=state,
                    optimizer=run.optimizer,
                    metric=run.metric,
                    config=run.config,
                    dataset_id=run.dataset_id,
                    baseline_score=baseline_score,
                    optimized_score=optimized_score,
                    **ctx.meta(),
                )
            except DomainError as exc:
                return self._fail_run(run, ctx, "illegal_transition", str(exc))
            run.complete(version, baseline_score, optimized_score, **ctx.meta())
            result = OptimizationCompleted(
                optimization_id=run.optimization_id,
                program_id=run.program_id,
                version=version,
                optimizer=run.optimizer,
                metric=run.metric,
                dataset_id=run.dataset_id,
                baseline_score=baseline_score,
                optimized_score=optimized_score,
            )
            return self.record(ctx, Outcome.of(result, run.run_id), run, program)

        return self._finish(self.optimization, optimization_id, "OptimizeProgram", finish)

    def fail_optimization(self, optimization_id: str, code: str, message: str) -> Outcome:
        def finish(run: Run, ctx: CommandContext) -> Outcome:
            return self._fail_run(run, ctx, code, message)

        return self._finish(self.optimization, optimization_id, "OptimizeProgram", finish)

    # --- evaluations ---------------------------------------------------------------------

    def plan_evaluation(
        self, cmd: EvaluateProgram, ctx: CommandContext
    ) -> EvaluationPlan | Outcome:
        ctx = _typed(ctx, "EvaluateProgram")
        run_id = cmd.evaluation_id or ctx.command_id
        return self.attempt(ctx, lambda: self._plan_evaluation(cmd, ctx, run_id), run_id)

    def _plan_evaluation(
        self, cmd: EvaluateProgram, ctx: CommandContext, run_id: str
    ) -> EvaluationPlan:
        existing = self.find(Evaluation, evaluation_uuid(run_id))
        if existing is not None:
            _check_same_command(existing.command_id, ctx, "evaluation_id", run_id)
            return self._evaluation_plan(existing, resumed=True)
        program = self.program(cmd.program_id)
        if program.status == DEPRECATED:
            raise IllegalTransition(f"program {cmd.program_id!r} is deprecated", loc=["program_id"])
        version = program.serving_version(cmd.version)
        errors = _named("metric", cmd.metric)
        errors += self._dataset_problems(program, version, cmd.dataset_id)
        if errors:
            raise InvalidInput(errors=errors)
        run = Evaluation(
            evaluation_id=run_id,
            program_id=cmd.program_id,
            version=version["number"],
            dataset_id=cmd.dataset_id,
            metric=cmd.metric,
            **ctx.meta(),
        )
        run.start(**ctx.meta())
        self.save(run)
        return self._evaluation_plan(run, resumed=False)

    def _evaluation_plan(self, run: Evaluation, *, resumed: bool) -> EvaluationPlan:
        program = self.program(run.program_id, copy=False)
        dataset = self.dataset(run.dataset_id, copy=False)
        # The dev split is held out for scoring; a dataset without one is scored whole.
        devset = dataset.split(DEV) or list(dataset.examples)
        return EvaluationPlan(
            evaluation_id=run.evaluation_id,
            dataset_id=run.dataset_id,
            devset=devset,
            metric=run.metric,
            resumed=resumed,
            **_plan_fields(program, program.get_version(run.version_used)),
        )

    def complete_evaluation(
        self, evaluation_id: str, score: float, per_example: list[dict[str, Any]]
    ) -> Outcome:
        def finish(run: Run, ctx: CommandContext) -> Outcome:
            assert isinstance(run, Evaluation)
            bad = _score_errors(score=score)
            if bad:
                return self._fail_run(run, ctx, "invalid_result", bad[0]["msg"])
            run.complete(score, per_example, **ctx.meta())
            result = EvaluationCompleted(
                evaluation_id=run.evaluation_id,
                program_id=run.program_id,
                version=run.version_used,
                dataset_id=run.dataset_id,
                metric=run.metric,
                score=score,
                examples=len(per_example),
            )
            return self.record(ctx, Outcome.of(result, run.run_id), run)

        return self._finish(self.evaluation, evaluation_id, "EvaluateProgram", finish)

    def fail_evaluation(self, evaluation_id: str, code: str, message: str) -> Outcome:
        def finish(run: Run, ctx: CommandContext) -> Outcome:
            return self._fail_run(run, ctx, code, message)

        return self._finish(self.evaluation, evaluation_id, "EvaluateProgram", finish)

    # --- run plumbing ------------------------------------------------------------------

    def _finish(
        self,
        load: Callable[[str], Run],
        run_id: str,
        command_type: str,
        finish: Callable[[Run, CommandContext], Outcome],
    ) -> Outcome:
        """End a run on behalf of the command that asked for it, exactly once."""
        ctx = run_context(load(run_id), command_type)

        def work() -> Outcome:
            run = load(run_id)
            if not run.is_open:
                raise IllegalTransition(f"run {run_id!r} already {run.status}", loc=["status"])
            return finish(run, ctx)

        return self.attempt(ctx, work, run_id)

    def _fail_run(self, run: Run, ctx: CommandContext, code: str, message: str) -> Outcome:
        run.fail(code, message, **ctx.meta())
        error = ErrorInfo(code=code, message=message)
        result: OptimizationFailed | EvaluationFailed
        if isinstance(run, Optimization):
            result = OptimizationFailed(
                optimization_id=run.run_id, program_id=run.program_id, error=error
            )
        else:
            result = EvaluationFailed(
                evaluation_id=run.run_id, program_id=run.program_id, error=error
            )
        return self.record(ctx, Outcome.of(result, run.run_id), run)

    def cancel_outcome(self, run: Optimization, reason: str) -> Outcome:
        result = OptimizationCancelled(
            optimization_id=run.run_id, program_id=run.program_id, reason=reason
        )
        return Outcome.of(result, run.run_id)


# --- helpers shared with the handlers ---------------------------------------------------


def handled_record(ctx: CommandContext, outcome: Outcome) -> HandledCommand:
    return HandledCommand(
        command_id=ctx.command_id,
        command_type=ctx.command_type,
        result_type=outcome.result_type,
        subject=outcome.subject,
        data=outcome.data,
        correlation_id=ctx.correlation_id,
        actor=ctx.actor,
    )


def run_context(run: Run, command_type: str) -> CommandContext:
    """The context of the command that asked for `run`, for events recorded later."""
    return CommandContext(command_type=command_type, **run.origin())


def rejected(ctx: CommandContext, exc: Exception, subject: str) -> Outcome:
    result = CommandRejected(command_type=ctx.command_type, errors=error_items(errors_of(exc)))
    return Outcome.of(result, subject)


def errors_of(exc: Exception) -> list[ErrorDict]:
    if isinstance(exc, DomainError):
        return exc.errors
    if isinstance(exc, SignatureError):
        return exc.errors()
    if isinstance(exc, ValidationFailed):
        return exc.errors
    if isinstance(exc, ValidationError):
        return [dict(e) for e in exc.errors(include_url=False, include_input=False)]
    return [{"loc": [], "msg": str(exc), "type": type(exc).__name__}]


def error_items(errors: list[ErrorDict]) -> list[ErrorItem]:
    return [
        ErrorItem(
            loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "error")),
        )
        for error in errors
    ]


def subject_of(command: Command, ctx: CommandContext) -> str:
    """The user-facing id a command is about: its subject on the results topic."""
    for name in ("program_id", "dataset_id", "execution_id", "optimization_id", "evaluation_id"):
        value = getattr(command, name, None)
        if value:
            return str(value)
    return ctx.command_id


def _typed(ctx: CommandContext, command_type: str) -> CommandContext:
    return ctx if ctx.command_type else ctx.model_copy(update={"command_type": command_type})


def _check_same_command(owner: str, ctx: CommandContext, field: str, value: str) -> None:
    if owner != ctx.command_id:
        raise AlreadyExists(f"{field} {value!r} is used by another command", loc=[field])


def _named(field: str, value: str) -> list[ErrorDict]:
    if isinstance(value, str) and value.strip():
        return []
    return [{"loc": [field], "msg": f"{field} must be a non-empty name", "type": "missing"}]


def _score_errors(**scores: float) -> list[ErrorDict]:
    return [
        {"loc": [name], "msg": f"{name} {value!r} is not in [0, 1]", "type": "out_of_range"}
        for name, value in scores.items()
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0)
    ]


def _plan_fields(program: Program, version: ProgramVersion) -> dict[str, Any]:
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


__all__ = [
    "REQUESTED",
    "CommandContext",
    "ConflictsExhausted",
    "DspyOps",
    "Outcome",
    "handled_record",
]
