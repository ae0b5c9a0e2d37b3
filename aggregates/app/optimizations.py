"""Optimization runs: plan and record the request, progress, cancel, then one ending.

`plan_optimization` is OptimizeProgram's handler and `cancel_optimization`
CancelOptimization's; the worker reports progress and the ending with the other
functions here while the optimizer runs.

This module is long because a run's every record is here, from its plan to its
checkpoints and its one ending (a version added, or kept from a run stopped over budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import RecordConflictError

from dspyops.aggregates.app.application import ConflictsExhausted, DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.corpora import searched_corpora
from dspyops.aggregates.app.judges import judge_plan, resolve_judge
from dspyops.aggregates.app.outcomes import check_same_command, handled_record, run_context
from dspyops.aggregates.app.plans import OptimizationPlan, plan_fields
from dspyops.aggregates.app.runs import (
    KeptVersion,
    dataset_problems,
    fail_run,
    finish_run,
    latest_dataset_version,
    named,
    run_dataset,
    score_errors,
)
from dspyops.aggregates.dataset import DEV, TRAIN
from dspyops.aggregates.errors import DomainError, InvalidInput, NotFound
from dspyops.aggregates.ids import optimization_uuid
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.program import Program
from dspyops.aggregates.run import RUNNING, Run
from dspyops.events.commands import CancelOptimization, OptimizeProgram
from dspyops.events.results import (
    OptimizationCancelled,
    OptimizationCompleted,
    OptimizationProgress,
    Provenance,
)
from dspyops.events.text import storable

COMMAND = "OptimizeProgram"
CANCEL_REASON = "cancelled on request"


def plan_optimization(app: DspyOps, cmd: OptimizeProgram, ctx: CommandContext) -> OptimizationPlan:
    """Check the request, record the run as requested and running, and say what to run.

    A redelivered command finds its run recorded and gets the same plan, `resumed`.
    """
    run_id = cmd.optimization_id or ctx.command_id
    existing = app.replay(Optimization, optimization_uuid(run_id))
    if existing is not None:
        check_same_command(
            existing.command_id, ctx, "optimization_id", run_id, existing.payload_digest
        )
        return _plan(app, existing, resumed=True)
    program = app.program(cmd.program_id)
    program.check("optimize")
    errors = named("optimizer", cmd.optimizer) + named("metric", cmd.metric)
    errors += app.checks.optimization(cmd.optimizer, cmd.metric, cmd.config)
    judge, judge_errors = resolve_judge(
        app, cmd.metric, app.compiled(program, program.versions[-1])
    )
    errors += judge_errors
    # The examples are pinned at the version validated: a run that resumes takes them again.
    dataset_version = latest_dataset_version(app, cmd.dataset_id)
    errors += dataset_problems(app, program, program.versions[-1], cmd.dataset_id, dataset_version)
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
        payload_digest=ctx.payload_digest,
        budget=cmd.budget.model_dump() if cmd.budget is not None else None,
        dataset_version=dataset_version,
        judge=judge,
        **ctx.meta(),
    )
    run.start(**ctx.meta())
    # No HandledCommand yet: the command's terminal outcome comes when the run ends.
    app.save(run)
    return _plan(app, run, resumed=False)


def _plan(app: DspyOps, run: Optimization, *, resumed: bool) -> OptimizationPlan:
    program = app.program(run.program_id, copy=False)
    dataset = run_dataset(app, run.dataset_id, run.dataset_version)
    base = program.get_version(run.base_version)
    judge = None if run.judge is None else judge_plan(app, run.judge, app.compiled(program, base))
    return OptimizationPlan(
        optimization_id=run.optimization_id,
        dataset_id=run.dataset_id,
        dataset_version=dataset.version,
        trainset=dataset.split(TRAIN),
        devset=dataset.split(DEV),
        optimizer=run.optimizer,
        metric=run.metric,
        config=run.config,
        budget=run.budget,
        resumed=resumed,
        starts=run.starts,
        judge=judge,
        # A run started again skips the candidates it recorded (in the order scored).
        checkpoints=list(run.candidates.values()) if resumed else [],
        **plan_fields(program, base),
        corpora=searched_corpora(app, program),
    )


def record_progress(
    app: DspyOps, optimization_id: str, step: int, total: int, best_score: float | None = None
) -> Outcome | None:
    """Record progress of a running optimization; None when it is no longer running."""
    for _ in range(app.max_attempts):
        run = app.optimization(optimization_id)
        if run.status != RUNNING:
            return None
        run.progress(step, total, best_score, **run.origin())
        try:
            app.save(run)
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


def record_checkpoint(
    app: DspyOps,
    optimization_id: str,
    *,
    seed: int,
    score: float,
    state: dict[str, Any],
    baseline_score: float,
    spent: dict[str, int],
) -> bool:
    """Record one scored candidate of a running optimization (``Optimization.checkpoint``);
    False when the run is no longer running or already holds that candidate."""
    for _ in range(app.max_attempts):
        run = app.optimization(optimization_id)
        if run.status != RUNNING:
            return False
        # Bootstrapped demos hold LM text: made storable (NUL replaced), as a version's.
        if not run.checkpoint(seed, score, storable(state), baseline_score, spent, **run.origin()):
            return False
        try:
            app.save(run)
        except RecordConflictError:
            continue
        return True
    raise ConflictsExhausted(f"optimization {optimization_id!r}: checkpoint kept conflicting")


def cancelled_since(app: DspyOps, optimization_id: str, after: int) -> tuple[bool, int]:
    """Whether the run was cancelled in its events after version `after`, and the last
    version read. A running run's watcher asks twice a second: it reads only what is new,
    not every checkpoint again (each holds a whole program state)."""
    stored = app.recorder.select_events(optimization_uuid(optimization_id), gt=after)
    last = stored[-1].originator_version if stored else after
    return any(e.topic.rsplit(".", 1)[-1] == "Cancelled" for e in stored), last


def complete_optimization(
    app: DspyOps,
    optimization_id: str,
    *,
    state: dict[str, Any],
    baseline_score: float,
    optimized_score: float,
    spend: dict[str, Any] | None = None,
    provenance: Provenance | None = None,
) -> Outcome:
    """Add the optimized program version, status -> optimized; one save with the outcome.
    `spend`: what the run spent (events.results.RunSpend's fields), for the result;
    `provenance`: what it ran with (events.results.Provenance as JSON)."""
    spent = spend or {}

    def finish(run: Run, ctx: CommandContext) -> Outcome:
        assert isinstance(run, Optimization)
        program = app.program(run.program_id)
        added = _add_version(run, program, ctx, state, baseline_score, optimized_score)
        if isinstance(added, tuple):
            return fail_run(app, run, ctx, *added, spent)
        recorded = None if provenance is None else provenance.model_dump(mode="json")
        run.complete(added, baseline_score, optimized_score, recorded, **ctx.meta())
        result = OptimizationCompleted(
            optimization_id=run.optimization_id,
            program_id=run.program_id,
            version=added,
            optimizer=run.optimizer,
            metric=run.metric,
            dataset_id=run.dataset_id,
            baseline_score=baseline_score,
            optimized_score=optimized_score,
            dataset_version=run.dataset_version,
            provenance=provenance,
            **spent,
        )
        return app.record(ctx, Outcome.of(result, run.run_id), run, program)

    return finish_run(app, app.optimization, optimization_id, COMMAND, finish)


@dataclass(frozen=True)
class BestFound:
    """The best candidate a failed run found, better than its baseline: kept as a version."""

    state: dict[str, Any]
    baseline_score: float
    optimized_score: float


def fail_optimization(
    app: DspyOps,
    optimization_id: str,
    code: str,
    message: str,
    spend: dict[str, Any] | None = None,
    *,
    best: BestFound | None = None,
) -> Outcome:
    """End the run failed; with `best` (a run stopped over budget), first add the version
    a completed run would have added from it, and name it on the failure."""

    def finish(run: Run, ctx: CommandContext) -> Outcome:
        assert isinstance(run, Optimization)
        if best is None:
            return fail_run(app, run, ctx, code, message, spend)
        program = app.program(run.program_id)
        added = _add_version(
            run, program, ctx, best.state, best.baseline_score, best.optimized_score
        )
        if isinstance(added, tuple):
            why = f"{message}; its best candidate was not kept: {added[1]}"
            return fail_run(app, run, ctx, code, why, spend)
        kept = KeptVersion(added, best.baseline_score, best.optimized_score)
        why = (
            f"{message}; kept its best candidate as version {added} "
            f"(score {best.optimized_score:g}, baseline {best.baseline_score:g})"
        )
        return fail_run(app, run, ctx, code, why, spend, kept, program)

    return finish_run(app, app.optimization, optimization_id, COMMAND, finish)


def _add_version(
    run: Optimization,
    program: Program,
    ctx: CommandContext,
    state: dict[str, Any],
    baseline_score: float,
    optimized_score: float,
) -> int | tuple[str, str]:
    """The new version's number, or why none was added: (error code, message)."""
    bad = score_errors(baseline_score=baseline_score, optimized_score=optimized_score)
    if bad:
        return "invalid_result", bad[0]["msg"]
    try:
        return program.add_optimized_version(
            optimization_id=run.optimization_id,
            # Bootstrapped demos hold LM text: made storable (NUL replaced).
            state=storable(state),
            optimizer=run.optimizer,
            metric=run.metric,
            config=run.config,
            dataset_id=run.dataset_id,
            dataset_version=run.dataset_version,
            baseline_score=baseline_score,
            optimized_score=optimized_score,
            # The plugin module the run optimized: the base version's.
            plugin=program.get_version(run.base_version)["plugin"],
            **ctx.meta(),
        )
    except DomainError as exc:
        return "illegal_transition", str(exc)


def cancel_optimization(app: DspyOps, cmd: CancelOptimization, ctx: CommandContext) -> Outcome:
    """Cancel a run; the asking OptimizeProgram command ends with the same outcome.

    Both outcomes are stored in this one save, so the running job only has to notice
    (`cancelled_since`) and stop; completing it afterwards returns the stored outcome.
    """
    run = app.optimization(cmd.optimization_id)
    if run.program_id != cmd.program_id:
        raise NotFound(
            f"optimization {cmd.optimization_id!r} is not of program {cmd.program_id!r}",
            loc=["optimization_id"],
        )
    run.cancel(CANCEL_REASON, **ctx.meta())
    result = OptimizationCancelled(
        optimization_id=run.run_id, program_id=run.program_id, reason=CANCEL_REASON
    )
    outcome = Outcome.of(result, run.run_id)
    asking = run_context(run, COMMAND)
    # The asking command's id may have been taken by another command meanwhile: then it
    # keeps that command's outcome (the run is open, so it holds none of its own yet).
    original = (
        [handled_record(asking, outcome)] if app.stored_outcome(asking.command_id) is None else []
    )
    return app.record(ctx, outcome, run, *original)
