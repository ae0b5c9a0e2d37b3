"""Optimization and evaluation runs: plan and record the request, progress, then one ending.

A run's asking command (OptimizeProgram, EvaluateProgram) gets its terminal outcome when
the run ends, stored in the same save as the run's last event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import RecordConflictError

from dspyops.aggregates.context import CommandContext, Outcome
from dspyops.aggregates.dataset import DEV, TRAIN
from dspyops.aggregates.errors import (
    DomainError,
    ErrorDict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    prefixed,
)
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.execution_service import plan_fields
from dspyops.aggregates.ids import evaluation_uuid, optimization_uuid
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.outcomes import check_same_command, run_context, typed
from dspyops.aggregates.plans import EvaluationPlan, OptimizationPlan
from dspyops.aggregates.program import DEPRECATED, Program, ProgramVersion
from dspyops.aggregates.run import CANCELLED, RUNNING, Run
from dspyops.aggregates.service import ConflictsExhausted, Service
from dspyops.events.commands import EvaluateProgram, OptimizeProgram
from dspyops.events.results import (
    ErrorInfo,
    EvaluationCompleted,
    EvaluationFailed,
    OptimizationCancelled,
    OptimizationCompleted,
    OptimizationFailed,
    OptimizationProgress,
)


class RunService(Service):
    # --- optimizations ------------------------------------------------------------------

    def plan_optimization(
        self, cmd: OptimizeProgram, ctx: CommandContext
    ) -> OptimizationPlan | Outcome:
        """Check the request, record the run as requested and running, and say what to run."""
        ctx = typed(ctx, "OptimizeProgram")
        run_id = cmd.optimization_id or ctx.command_id
        return self.attempt(ctx, lambda _: self._plan_optimization(cmd, ctx, run_id), run_id)

    def _plan_optimization(
        self, cmd: OptimizeProgram, ctx: CommandContext, run_id: str
    ) -> OptimizationPlan:
        existing = self.replay(Optimization, optimization_uuid(run_id))
        if existing is not None:
            check_same_command(existing.command_id, ctx, "optimization_id", run_id)
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
            **plan_fields(program, program.get_version(run.base_version)),
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
        return self.optimization(optimization_id).status == CANCELLED

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
        ctx = typed(ctx, "EvaluateProgram")
        run_id = cmd.evaluation_id or ctx.command_id
        return self.attempt(ctx, lambda _: self._plan_evaluation(cmd, ctx, run_id), run_id)

    def _plan_evaluation(
        self, cmd: EvaluateProgram, ctx: CommandContext, run_id: str
    ) -> EvaluationPlan:
        existing = self.replay(Evaluation, evaluation_uuid(run_id))
        if existing is not None:
            check_same_command(existing.command_id, ctx, "evaluation_id", run_id)
            return self._evaluation_plan(existing, resumed=True)
        program = self.program(cmd.program_id)
        if program.status == DEPRECATED:
            raise IllegalTransition(f"program {cmd.program_id!r} is deprecated", loc=["program_id"])
        version = program.serving_version(cmd.version)
        errors = _named("metric", cmd.metric) or self.validate_metric(cmd.metric)
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
            **plan_fields(program, program.get_version(run.version_used)),
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

        def work(_: bool) -> Outcome:
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
