"""Promotion gates: a change that applies only once each candidate version has scored at
least the current version's score plus `min_delta`.

A gate is Evaluation runs on the gate's dataset split: one per candidate (role
`candidate` for a deploy's one candidate, `candidate-v<N>` for each candidate arm of a
traffic split) and one for the current version (role `current`: production for a
deploy, the alias's own version for a split), saved together under ids derived from the
gated command's id (`gate_run_id`): a command redelivered after a crash finds them,
reuses the runs that ended and runs the open ones again. The runs end without storing
an outcome (`Evaluation.gate`): the gated command stores its one outcome when it applies
or refuses, after all ended, so until then nothing is applied and a crash leaves
nothing half-applied.

A gate can be cancelled (`cancel_gate`, CancelGate): its open runs are cancelled and the
gated command's outcome, `GateCancelled`, is stored at once; the runs already scoring
finish their examples (they check nothing as they go), then ending them and finishing
the gate meet that stored outcome, so nothing is applied.

`plan_gate` starts (or resumes) the runs for any gated command; `judge` compares what
they measured. Applying the change is the gated command's own business (DeployProgram:
`programs.finish_gated_deploy`; SetTrafficSplit: `splits.finish_gated_split`), reached
through `handlers.finish_gate`.

This module is long because a gate's whole life is here: planning and resuming its runs,
cancelling them, and judging what they measured, which must agree on one set of run ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.evaluations import examples_of, plan_run
from dspyops.aggregates.app.judges import metric_problems
from dspyops.aggregates.app.outcomes import check_same_command, handled_record, run_context
from dspyops.aggregates.app.plans import GatePlan, plan_fields
from dspyops.aggregates.app.runs import (
    dataset_problems,
    latest_dataset_version,
    named,
    run_dataset,
)
from dspyops.aggregates.errors import (
    IllegalTransition,
    InvalidInput,
    NotFound,
    prefixed,
)
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.ids import evaluation_uuid
from dspyops.aggregates.program import Program
from dspyops.aggregates.run import CANCELLED, COMPLETED
from dspyops.events.commands import CancelGate, Command, PromotionGate
from dspyops.events.results import GateCancelled, GateReport

CANDIDATE, CURRENT = "candidate", "current"

# Scores are means of per-example scores: 0.7 against 0.6 with min_delta 0.1 must pass,
# though 0.6 + 0.1 is 0.7000000000000001 in floating point. Far below any real delta.
TOLERANCE = 1e-9

# Refusal codes (DeploymentRefused.error.code, TrafficSplitRefused.error.code).
NOT_PASSED = "gate_not_passed"
RUN_FAILED = "gate_evaluation_failed"
PRODUCTION_CHANGED = "production_changed"
ALIAS_MOVED = "alias_moved"
SPLIT_CHANGED = "split_changed"


def gate_run_id(command_id: str, role: str) -> str:
    """The id of a gate's evaluation run: fixed by the command id, so a redelivery finds it."""
    return f"{command_id}:gate-{role}"


CANCEL_REASON = "cancelled on request"


def cancel_gate(app: DspyOps, cmd: CancelGate, ctx: CommandContext) -> Outcome:
    """End the gated command `cmd.command_id` now, unapplied: its open runs cancelled and
    `GateCancelled` stored as its outcome and this command's, in one save."""
    current = _gate_run(app, cmd.command_id, CURRENT)
    if current is None or current.gate is None or current.program_id != cmd.program_id:
        raise NotFound(
            f"no gate of program {cmd.program_id!r} for command {cmd.command_id!r}",
            loc=["command_id"],
        )
    command_type = current.gate["command_type"]
    ended = app.stored_outcome(cmd.command_id)
    if ended is not None:
        raise IllegalTransition(
            f"the gate of {command_type} {cmd.command_id!r} has ended: {ended.result_type}",
            loc=["command_id"],
        )
    program = app.program(cmd.program_id, copy=False)
    runs = [*_candidate_runs(app, program, cmd.command_id), current]
    for run in runs:
        if run.is_open:
            run.cancel(CANCEL_REASON, **ctx.meta())
    result = GateCancelled(
        program_id=cmd.program_id,
        command_id=cmd.command_id,
        command_type=command_type,
        evaluation_ids=[run.evaluation_id for run in runs],
        reason=CANCEL_REASON,
    )
    outcome = Outcome.of(result, cmd.program_id)
    gated = handled_record(run_context(current, command_type), outcome)
    return app.record(ctx, outcome, *runs, gated)


def _gate_run(app: DspyOps, command_id: str, role: str) -> Evaluation | None:
    return app.replay(Evaluation, evaluation_uuid(gate_run_id(command_id, role)))


def _candidate_runs(app: DspyOps, program: Program, command_id: str) -> list[Evaluation]:
    """The candidate runs a gate stored: a deploy's one, or a split's (a role per version)."""
    roles = [CANDIDATE, *map(candidate_role, range(1, program.latest_version + 1))]
    return [run for role in roles if (run := _gate_run(app, command_id, role)) is not None]


def resume_gate(
    app: DspyOps, program: Program, command: Command, gate: PromotionGate, ctx: CommandContext
) -> GatePlan | None:
    """The plan of a gate this command started before (a redelivery), from the runs it
    stored; None when it started none. Called before the change is checked again: what
    changed meanwhile is judged when the runs end (the finisher checks and refuses), so a
    gate's runs never stay open because the program moved while they ran."""
    current = _gate_run(app, ctx.command_id, CURRENT)
    if current is None:
        return None
    found = _candidate_runs(app, program, ctx.command_id)
    for run in (*found, current):
        check_same_command(run.command_id, ctx, "id", ctx.command_id, run.payload_digest)
    return _plan(app, program, command, gate, found, current, True)


def candidate_role(version: int) -> str:
    """The role of one candidate arm's run in a split's gate (several may be gated)."""
    return f"{CANDIDATE}-v{version}"


def plan_gate(
    app: DspyOps,
    program: Program,
    candidates: dict[str, int],
    current: int | None,
    gate: PromotionGate,
    command: Command,
    ctx: CommandContext,
    facts: dict[str, Any] | None = None,
) -> GatePlan:
    """Start the gate's runs (or find them again) and say what is left to run.

    `candidates` maps each candidate's role to its version; `current` is the version they
    are compared with. Without one there is nothing to protect or compare with, and the
    gated command is refused (loc `gate`). `facts` (JSON) are kept on every run's `gate`
    for the finisher (a split's arms when its gate began). The caller has checked that
    the change itself is allowed now.
    """
    current_id = gate_run_id(ctx.command_id, CURRENT)
    current_run = app.replay(Evaluation, evaluation_uuid(current_id))
    if current_run is not None:
        # All runs were saved together: the current one found, the others are there too.
        found = [app.evaluation(gate_run_id(ctx.command_id, role)) for role in candidates]
        for run in (*found, current_run):
            check_same_command(run.command_id, ctx, "id", ctx.command_id, run.payload_digest)
        return _plan(app, program, command, gate, found, current_run, True)
    if current is None:
        versions = ", ".join(str(v) for v in candidates.values())
        raise IllegalTransition(
            f"program {program.program_id!r} has no production version to compare version "
            f"{versions} with: deploy one without a gate first",
            loc=["gate"],
        )
    # Every run scores the same examples: the dataset's version now, pinned.
    dataset_version = latest_dataset_version(app, gate.dataset_id)
    judge = None
    for version in candidates.values():
        judge = _check(app, program, version, gate, dataset_version)
    runs = [
        _run(program, version, role, gate, command, ctx, facts, dataset_version, judge)
        for role, version in (*candidates.items(), (CURRENT, current))
    ]
    # All runs in one save: a redelivery finds all or none.
    app.save(*runs)
    return _plan(app, program, command, gate, runs[:-1], runs[-1], False)


def _run(
    program: Program,
    version: int,
    role: str,
    gate: PromotionGate,
    command: Command,
    ctx: CommandContext,
    facts: dict[str, Any] | None,
    dataset_version: int | None,
    judge: dict[str, Any] | None,
) -> Evaluation:
    run = Evaluation(
        evaluation_id=gate_run_id(ctx.command_id, role),
        program_id=program.program_id,
        version=version,
        dataset_id=gate.dataset_id,
        metric=gate.metric,
        payload_digest=ctx.payload_digest,
        split=gate.split,
        gate={"command_type": type(command).__name__, "role": role, **(facts or {})},
        dataset_version=dataset_version,
        # Every run of the gate is scored by the same judge version.
        judge=judge,
        **ctx.meta(),
    )
    run.start(**ctx.meta())
    return run


def _check(
    app: DspyOps,
    program: Program,
    candidate: int,
    gate: PromotionGate,
    dataset_version: int | None,
) -> dict[str, Any] | None:
    """The gate's problems with this candidate raised; the judge to pin, if any."""
    version = program.get_version(candidate)
    judge, errors = None, named("metric", gate.metric)
    if not errors:
        judge, errors = metric_problems(app, gate.metric, app.compiled(program, version))
    errors += dataset_problems(app, program, version, gate.dataset_id, dataset_version)
    pinned = None if errors else run_dataset(app, gate.dataset_id, dataset_version)
    if pinned is not None and not examples_of(pinned, gate.split):
        msg = f"dataset {gate.dataset_id!r} has no {gate.split} examples to score"
        errors.append({"loc": ["split"], "msg": msg, "type": "empty_split"})
    if errors:
        raise InvalidInput(errors=prefixed(errors, "gate"))
    return judge


def _plan(
    app: DspyOps,
    program: Program,
    command: Command,
    gate: PromotionGate,
    candidates: list[Evaluation],
    current: Evaluation,
    resumed: bool,
) -> GatePlan:
    every = (*candidates, current)
    return GatePlan(
        command_type=type(command).__name__,
        command=command.model_dump(mode="json"),
        gate=gate.model_dump(mode="json"),
        current_version=current.version_used,
        candidate_evaluation_ids=[run.evaluation_id for run in candidates],
        current_evaluation_id=current.evaluation_id,
        # Runs that ended (before a crash) are reused: only the open ones run.
        runs=[plan_run(app, run, resumed=resumed) for run in every if run.is_open],
        resumed=resumed,
        **plan_fields(program, program.get_version(candidates[0].version_used)),
    )


@dataclass(frozen=True)
class Verdict:
    """What the gate found: a report per candidate always; `refusal` (code, message)
    unless every candidate passed."""

    reports: list[GateReport]
    refusal: tuple[str, str] | None


def judge(
    app: DspyOps, plan: GatePlan, alias: str, points_at: int | None, moved_code: str
) -> Verdict:
    """Compare the gate's ended runs, at apply time: a run that did not complete, or an
    `alias` that moved while the gate ran (it `points_at` another version now: the
    comparison was with another version, `moved_code`), refuses the change as surely as
    a score too low. Every candidate must pass."""
    gate = PromotionGate.model_validate(plan.gate)
    current = app.evaluation(plan.current_evaluation_id)
    candidates = [app.evaluation(run_id) for run_id in plan.candidate_evaluation_ids]
    reports = [_report(gate, run, current) for run in candidates]
    for run in (*candidates, current):
        if run.status != COMPLETED:
            role = (run.gate or {}).get("role", CANDIDATE)
            why = run.cancel_reason if run.status == CANCELLED else run.error_message
            message = (
                f"the gate's {role} run {run.evaluation_id!r} (version {run.version_used}) "
                f"{run.status}: {why or 'no reason recorded'}; nothing to compare"
            )
            return Verdict(reports, (RUN_FAILED, message))
    if points_at != plan.current_version:
        message = (
            f"{alias} moved from version {plan.current_version} to "
            f"{points_at if points_at is not None else 'no version'} while the gate ran: "
            "its comparison no longer holds"
        )
        return Verdict(reports, (moved_code, message))
    assert current.score is not None
    needed = current.score + gate.min_delta
    failed = [
        f"version {run.version_used} scored {run.score:g} on {gate.split} of "
        f"{gate.dataset_id!r} ({gate.metric})"
        for run in candidates
        if run.score is None or run.score < needed - TOLERANCE
    ]
    if not failed:
        return Verdict(reports, None)
    message = (
        f"{'; '.join(failed)}; version {plan.current_version} in {alias} scored "
        f"{current.score:g}, and min_delta {gate.min_delta:g} asks for at least {needed:g}"
    )
    return Verdict(reports, (NOT_PASSED, message))


def _report(gate: PromotionGate, candidate: Evaluation, current: Evaluation) -> GateReport:
    return GateReport(
        dataset_id=gate.dataset_id,
        metric=gate.metric,
        split=gate.split,
        min_delta=gate.min_delta,
        candidate_version=candidate.version_used,
        current_version=current.version_used,
        candidate_score=candidate.score,
        current_score=current.score,
        candidate_evaluation_id=candidate.evaluation_id,
        current_evaluation_id=current.evaluation_id,
    )
