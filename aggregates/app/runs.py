"""What optimization and evaluation runs share: ending a run exactly once, and its checks.

A run's asking command (OptimizeProgram, EvaluateProgram) gets its terminal outcome when
the run ends, stored in the same save as the run's last event; until then the command
has no HandledCommand, so a redelivered command finds the run and resumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.outcomes import run_context
from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.errors import ErrorDict, IllegalTransition, NotFound, prefixed
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.program import Program, ProgramVersion
from dspyops.aggregates.run import Run
from dspyops.events.results import ErrorInfo, EvaluationFailed, OptimizationFailed
from dspyops.events.text import clean

Finish = Callable[[Run, CommandContext], Outcome]


def finish_run(
    app: DspyOps,
    load: Callable[[str], Run],
    run_id: str,
    command_type: str,
    finish: Finish,
    already_ended: Callable[[Run], Outcome] | None = None,
) -> Outcome:
    """End a run on behalf of the command that asked for it, exactly once.

    The run ends even when another command took its command's id meanwhile (a producer
    reusing ids): its outcome is then not stored under the id, which keeps the other's.
    A run that ended already is refused (stored as the asking command's rejection), or,
    with `already_ended`, answered by it and nothing stored.
    """
    ctx = run_context(load(run_id), command_type)

    def work(_: bool) -> Outcome:
        run = load(run_id)
        if not run.is_open:
            if already_ended is not None:
                return already_ended(run)
            raise IllegalTransition(f"run {run_id!r} already {run.status}", loc=["status"])
        owner = ctx if app.owns_id(ctx) else ctx.model_copy(update={"store_outcome": False})
        return finish(run, owner)

    return app.attempt(ctx, work, run_id, foreign_ok=True)


@dataclass(frozen=True)
class KeptVersion:
    """The version a failed optimization kept (made from its best candidate) and the
    scores it was kept on."""

    version: int
    baseline_score: float
    optimized_score: float


def fail_run(
    app: DspyOps,
    run: Run,
    ctx: CommandContext,
    code: str,
    message: str,
    spend: dict[str, Any] | None = None,
    kept: KeptVersion | None = None,
    *changed: Aggregate,
) -> Outcome:
    """Record the run's failure and the asking command's outcome in one save, with the
    `changed` aggregates (the program a kept version went to); `spend`
    (events.results.RunSpend's fields) goes into the result."""
    spent = spend or {}
    message = clean(message)  # error text from an optimizer or an LM: made storable
    run.fail(code, message, kept.version if kept else None, **ctx.meta())
    error = ErrorInfo(code=code, message=message)
    result: OptimizationFailed | EvaluationFailed
    if isinstance(run, Optimization):
        result = OptimizationFailed(
            optimization_id=run.run_id,
            program_id=run.program_id,
            error=error,
            kept_version=kept.version if kept else None,
            baseline_score=kept.baseline_score if kept else None,
            optimized_score=kept.optimized_score if kept else None,
            **spent,
        )
    else:
        result = EvaluationFailed(
            evaluation_id=run.run_id, program_id=run.program_id, error=error, **spent
        )
    return app.record(ctx, Outcome.of(result, run.run_id), run, *changed)


def latest_dataset_version(app: DspyOps, dataset_id: str) -> int | None:
    """The dataset's version now, for a new run to record and take its examples from;
    None when there is no such dataset (`dataset_problems` says so)."""
    try:
        return app.dataset(dataset_id, copy=False).version
    except NotFound:
        return None


def run_dataset(app: DspyOps, dataset_id: str, dataset_version: int | None) -> Dataset:
    """The dataset a run takes its examples from: as of the version it recorded, however
    it grew since; a run recorded before runs were pinned (None) takes the current one."""
    if dataset_version is None:
        return app.dataset(dataset_id, copy=False)
    return app.dataset_at(dataset_id, dataset_version)


def dataset_problems(
    app: DspyOps,
    program: Program,
    version: ProgramVersion,
    dataset_id: str,
    dataset_version: int | None = None,
) -> list[ErrorDict]:
    """Why the dataset (as of `dataset_version`, default its latest) cannot be used with
    this program version: missing, or examples that misfit."""
    try:
        dataset = run_dataset(app, dataset_id, dataset_version)
    except NotFound as exc:
        return exc.errors
    return prefixed(dataset.validate_against(app.compiled(program, version)), "dataset")


def named(field: str, value: str) -> list[ErrorDict]:
    if isinstance(value, str) and value.strip():
        return []
    return [{"loc": [field], "msg": f"{field} must be a non-empty name", "type": "missing"}]


def score_errors(**scores: float) -> list[ErrorDict]:
    return [
        {"loc": [name], "msg": f"{name} {value!r} is not in [0, 1]", "type": "out_of_range"}
        for name, value in scores.items()
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0)
    ]
