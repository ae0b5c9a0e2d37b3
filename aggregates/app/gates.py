"""Promotion gates: a change to production that applies only once the candidate version
has scored at least the production version's score plus `min_delta`.

A gate is two Evaluation runs, roles `candidate` and `current`, on the gate's dataset
split, saved together under ids derived from the gated command's id (`gate_run_id`): a
command redelivered after a crash finds them, reuses the runs that ended and runs the
open ones again. The runs end without storing an outcome (`Evaluation.gate`): the gated
command stores its one outcome when it applies or refuses, after both ended, so until
then production is untouched and a crash leaves nothing half-applied.

`plan_gate` starts (or resumes) the runs for any gated command; `judge` compares what
they measured. Applying the change is the gated command's own business (DeployProgram:
`programs.finish_gated_deploy`), reached through `handlers.finish_gate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext
from dspyops.aggregates.app.evaluations import examples_of, plan_run
from dspyops.aggregates.app.outcomes import check_same_command
from dspyops.aggregates.app.plans import GatePlan, plan_fields
from dspyops.aggregates.app.runs import dataset_problems, named
from dspyops.aggregates.errors import ErrorDict, IllegalTransition, InvalidInput, prefixed
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.ids import evaluation_uuid
from dspyops.aggregates.program import Program
from dspyops.aggregates.run import CANCELLED, COMPLETED
from dspyops.events.commands import Command, PromotionGate
from dspyops.events.results import GateReport

CANDIDATE, CURRENT = "candidate", "current"
ROLES = (CANDIDATE, CURRENT)

# Scores are means of per-example scores: 0.7 against 0.6 with min_delta 0.1 must pass,
# though 0.6 + 0.1 is 0.7000000000000001 in floating point. Far below any real delta.
TOLERANCE = 1e-9

# Refusal codes (DeploymentRefused.error.code).
NOT_PASSED = "gate_not_passed"
RUN_FAILED = "gate_evaluation_failed"
PRODUCTION_CHANGED = "production_changed"


def gate_run_id(command_id: str, role: str) -> str:
    """The id of a gate's evaluation run: fixed by the command id, so a redelivery finds it."""
    return f"{command_id}:gate-{role}"


def plan_gate(
    app: DspyOps,
    program: Program,
    candidate: int,
    gate: PromotionGate,
    command: Command,
    ctx: CommandContext,
) -> GatePlan:
    """Start the gate's two runs (or find them again) and say what is left to run.

    The current production version is the one compared against; a program with none has
    nothing to protect or compare with, and the gated command is refused (loc `gate`).
    The caller has checked that the change itself is allowed now.
    """
    ids = {role: gate_run_id(ctx.command_id, role) for role in ROLES}
    candidate_run = app.replay(Evaluation, evaluation_uuid(ids[CANDIDATE]))
    current_run = app.replay(Evaluation, evaluation_uuid(ids[CURRENT]))
    if candidate_run is not None and current_run is not None:
        for run in (candidate_run, current_run):
            check_same_command(run.command_id, ctx, "id", ctx.command_id, run.payload_digest)
        return _plan(app, program, command, gate, candidate_run, current_run, True)
    current = program.deployed_version
    if current is None:
        raise IllegalTransition(
            f"program {program.program_id!r} has no production version to compare version "
            f"{candidate} with: deploy one without a gate first",
            loc=["gate"],
        )
    _check(app, program, candidate, gate)
    runs = {}
    for role, version in ((CANDIDATE, candidate), (CURRENT, current)):
        run = Evaluation(
            evaluation_id=ids[role],
            program_id=program.program_id,
            version=version,
            dataset_id=gate.dataset_id,
            metric=gate.metric,
            payload_digest=ctx.payload_digest,
            split=gate.split,
            gate={"command_type": type(command).__name__, "role": role},
            **ctx.meta(),
        )
        run.start(**ctx.meta())
        runs[role] = run
    # Both runs in one save: a redelivery finds both or neither.
    app.save(*runs.values())
    return _plan(app, program, command, gate, runs[CANDIDATE], runs[CURRENT], False)


def _check(app: DspyOps, program: Program, candidate: int, gate: PromotionGate) -> None:
    version = program.get_version(candidate)
    errors: list[ErrorDict] = named("metric", gate.metric) or app.checks.metric(gate.metric)
    errors += dataset_problems(app, program, version, gate.dataset_id)
    if not errors and not examples_of(app.dataset(gate.dataset_id, copy=False), gate.split):
        msg = f"dataset {gate.dataset_id!r} has no {gate.split} examples to score"
        errors.append({"loc": ["split"], "msg": msg, "type": "empty_split"})
    if errors:
        raise InvalidInput(errors=prefixed(errors, "gate"))


def _plan(
    app: DspyOps,
    program: Program,
    command: Command,
    gate: PromotionGate,
    candidate: Evaluation,
    current: Evaluation,
    resumed: bool,
) -> GatePlan:
    return GatePlan(
        command_type=type(command).__name__,
        command=command.model_dump(mode="json"),
        gate=gate.model_dump(mode="json"),
        current_version=current.version_used,
        candidate_evaluation_id=candidate.evaluation_id,
        current_evaluation_id=current.evaluation_id,
        # Runs that ended (before a crash) are reused: only the open ones run.
        runs=[plan_run(app, run, resumed=resumed) for run in (candidate, current) if run.is_open],
        resumed=resumed,
        **plan_fields(program, program.get_version(candidate.version_used)),
    )


@dataclass(frozen=True)
class Verdict:
    """What the gate found: `report` always; `refusal` (code, message) unless it passed."""

    report: GateReport
    refusal: tuple[str, str] | None


def judge(app: DspyOps, plan: GatePlan, program: Program) -> Verdict:
    """Compare the gate's ended runs, at apply time: a run that did not complete, or a
    production version that moved while the gate ran (the comparison was with another
    version), refuses the change as surely as a score too low."""
    gate = PromotionGate.model_validate(plan.gate)
    candidate = app.evaluation(plan.candidate_evaluation_id)
    current = app.evaluation(plan.current_evaluation_id)
    report = GateReport(
        dataset_id=gate.dataset_id,
        metric=gate.metric,
        split=gate.split,
        min_delta=gate.min_delta,
        candidate_version=plan.version,
        current_version=plan.current_version,
        candidate_score=candidate.score,
        current_score=current.score,
        candidate_evaluation_id=candidate.evaluation_id,
        current_evaluation_id=current.evaluation_id,
    )
    for role, run in ((CANDIDATE, candidate), (CURRENT, current)):
        if run.status != COMPLETED:
            why = run.cancel_reason if run.status == CANCELLED else run.error_message
            message = (
                f"the gate's {role} run {run.evaluation_id!r} (version {run.version_used}) "
                f"{run.status}: {why or 'no reason recorded'}; nothing to compare"
            )
            return Verdict(report, (RUN_FAILED, message))
    if program.deployed_version != plan.current_version:
        message = (
            f"production moved from version {plan.current_version} to "
            f"{program.deployed_version} while the gate ran: its comparison no longer holds"
        )
        return Verdict(report, (PRODUCTION_CHANGED, message))
    assert candidate.score is not None
    assert current.score is not None
    needed = current.score + gate.min_delta
    if candidate.score >= needed - TOLERANCE:
        return Verdict(report, None)
    message = (
        f"version {plan.version} scored {candidate.score:g} on {gate.split} of "
        f"{gate.dataset_id!r} ({gate.metric}); version {plan.current_version} in production "
        f"scored {current.score:g}, and min_delta {gate.min_delta:g} asks for at least "
        f"{needed:g}"
    )
    return Verdict(report, (NOT_PASSED, message))
