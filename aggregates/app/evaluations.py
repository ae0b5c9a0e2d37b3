"""Evaluation runs: one program version scored on a dataset's dev split (or, for a
promotion gate's run, the split the gate names).

`plan_evaluation` is EvaluateProgram's handler (`gates.plan_gate` starts a gate's runs);
the worker ends a run with `complete_evaluation` or `fail_evaluation`.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.corpora import searched_corpora
from dspyops.aggregates.app.judges import judge_plan, metric_problems
from dspyops.aggregates.app.outcomes import check_same_command
from dspyops.aggregates.app.plans import EvaluationPlan, plan_fields
from dspyops.aggregates.app.runs import (
    Finish,
    dataset_problems,
    fail_run,
    finish_run,
    latest_dataset_version,
    named,
    run_dataset,
    score_errors,
)
from dspyops.aggregates.dataset import DEV, Dataset
from dspyops.aggregates.errors import InvalidInput
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.ids import evaluation_uuid
from dspyops.aggregates.run import Run
from dspyops.events.commands import EvaluateProgram
from dspyops.events.results import ErrorInfo, EvaluationCompleted, EvaluationFailed, Provenance
from dspyops.events.text import storable

# The split that names every example of a dataset (a gate's `split`).
ALL = "all"


def plan_evaluation(app: DspyOps, cmd: EvaluateProgram, ctx: CommandContext) -> EvaluationPlan:
    run_id = cmd.evaluation_id or ctx.command_id
    existing = app.replay(Evaluation, evaluation_uuid(run_id))
    if existing is not None:
        check_same_command(
            existing.command_id, ctx, "evaluation_id", run_id, existing.payload_digest
        )
        return plan_run(app, existing, resumed=True)
    program = app.program(cmd.program_id)
    program.check("evaluate")
    version = program.serving_version(cmd.version)
    judge, errors = None, named("metric", cmd.metric)
    if not errors:
        judge, errors = metric_problems(app, cmd.metric, app.compiled(program, version))
    # The examples are pinned at the version validated: a run that resumes takes them again.
    dataset_version = latest_dataset_version(app, cmd.dataset_id)
    errors += dataset_problems(app, program, version, cmd.dataset_id, dataset_version)
    if errors:
        raise InvalidInput(errors=errors)
    run = Evaluation(
        evaluation_id=run_id,
        program_id=cmd.program_id,
        version=version["number"],
        dataset_id=cmd.dataset_id,
        metric=cmd.metric,
        payload_digest=ctx.payload_digest,
        budget=cmd.budget.model_dump() if cmd.budget is not None else None,
        dataset_version=dataset_version,
        judge=judge,
        **ctx.meta(),
    )
    run.start(**ctx.meta())
    app.save(run)
    return plan_run(app, run, resumed=False)


def plan_run(app: DspyOps, run: Evaluation, *, resumed: bool) -> EvaluationPlan:
    """What the worker needs to score `run` (an EvaluateProgram's, or a gate's)."""
    program = app.program(run.program_id, copy=False)
    dataset = run_dataset(app, run.dataset_id, run.dataset_version)
    version = program.get_version(run.version_used)
    judge = None
    if run.judge is not None:
        judge = judge_plan(app, run.judge, app.compiled(program, version))
    return EvaluationPlan(
        evaluation_id=run.evaluation_id,
        dataset_id=run.dataset_id,
        dataset_version=dataset.version,
        devset=examples_of(dataset, run.split),
        metric=run.metric,
        budget=run.budget,
        resumed=resumed,
        judge=judge,
        **plan_fields(program, version),
        corpora=searched_corpora(app, program),
    )


def examples_of(dataset: Dataset, split: str | None) -> list[dict[str, Any]]:
    """The examples a run scores: a named split (a gate's), or (None: EvaluateProgram)
    the dev split, held out for scoring, and a dataset without one whole."""
    if split == ALL:
        return list(dataset.examples)
    if split is None:
        return dataset.split(DEV) or list(dataset.examples)
    return dataset.split(split)


def complete_evaluation(
    app: DspyOps,
    evaluation_id: str,
    score: float,
    per_example: list[dict[str, Any]],
    errored: int = 0,
    spend: dict[str, Any] | None = None,
    provenance: Provenance | None = None,
) -> Outcome:
    """`errored`: examples that could not be scored (a call failed), each counted 0 in
    `score`; `provenance`: what the run ran with."""

    def finish(run: Run, ctx: CommandContext) -> Outcome:
        assert isinstance(run, Evaluation)
        bad = score_errors(score=score)
        if bad:
            return fail_run(app, run, ctx, "invalid_result", bad[0]["msg"], spend)
        # Per-example outputs are what the LM said: made storable (NUL replaced).
        recorded = None if provenance is None else provenance.model_dump(mode="json")
        run.complete(score, storable(per_example), errored, recorded, **ctx.meta())
        result = EvaluationCompleted(
            evaluation_id=run.evaluation_id,
            program_id=run.program_id,
            version=run.version_used,
            dataset_id=run.dataset_id,
            metric=run.metric,
            score=score,
            examples=len(per_example),
            errored=errored,
            dataset_version=run.dataset_version,
            provenance=provenance,
            **(spend or {}),
        )
        return app.record(ctx, Outcome.of(result, run.run_id), run)

    return _end(app, evaluation_id, finish)


def fail_evaluation(
    app: DspyOps,
    evaluation_id: str,
    code: str,
    message: str,
    spend: dict[str, Any] | None = None,
) -> Outcome:
    def finish(run: Run, ctx: CommandContext) -> Outcome:
        return fail_run(app, run, ctx, code, message, spend)

    return _end(app, evaluation_id, finish)


def _end(app: DspyOps, evaluation_id: str, finish: Finish) -> Outcome:
    """End the run for the command that asked for it. A gate's run ends without an
    outcome: its command (a gated deploy) stores its one outcome when it applies or
    refuses, after both of its runs ended (gates.py)."""

    def ending(run: Run, ctx: CommandContext) -> Outcome:
        assert isinstance(run, Evaluation)
        if run.gate is not None:
            ctx = ctx.model_copy(update={"store_outcome": False})
        return finish(run, ctx)

    run = app.evaluation(evaluation_id)
    # A gate's run ended twice (a sibling run's outage retried the gate while this one
    # went on) is no rejection of the gated command: its outcome is the gate's to store.
    ended = _ended_gate_run if run.gate is not None else None
    return finish_run(app, app.evaluation, evaluation_id, run.asking_command, ending, ended)


def _ended_gate_run(run: Run) -> Outcome:
    error = ErrorInfo(
        code="already_ended", message=f"evaluation {run.run_id!r} already {run.status}"
    )
    return Outcome.of(
        EvaluationFailed(evaluation_id=run.run_id, program_id=run.program_id, error=error),
        run.run_id,
    )
