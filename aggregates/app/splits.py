"""Traffic split commands: split an alias's executions by weight, gated or not.

A gated split (SetTrafficSplit with a `gate`) is checked as an ungated one would be, then
its gate scores every candidate arm (each version in the new weights but the alias's own)
and the alias's own version (aggregates/app/gates.py); `finish_gated_split` applies it
only if every candidate passed, and only if the alias and its split are still as they
were when the gate began. Ending a split (`{<the alias's version>: 100}`) takes traffic
away from candidates: it has nothing to gate, and a gate there is refused (loc `gate`)
rather than ignored, so a sender never believes a gate held that never ran.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.gates import (
    ALIAS_MOVED,
    SPLIT_CHANGED,
    candidate_role,
    judge,
    plan_gate,
    resume_gate,
)
from dspyops.aggregates.app.plans import GatePlan
from dspyops.aggregates.app.programs import program_result
from dspyops.aggregates.errors import IllegalTransition
from dspyops.aggregates.program import Program
from dspyops.aggregates.traffic import Arm, describe
from dspyops.events.commands import SetTrafficSplit
from dspyops.events.results import (
    ErrorInfo,
    ProgramTrafficSplitSet,
    TrafficSplitRefused,
)

# The run facts a split's gate keeps (Evaluation.gate): the split when the gate began.
ARMS_WHEN_GATED = "arms"


def set_traffic_split(
    app: DspyOps, cmd: SetTrafficSplit, ctx: CommandContext
) -> Outcome | GatePlan:
    """Split now; with a gate, check the split now and plan the gate's runs (the worker
    runs them, then `finish_gated_split` applies or refuses)."""
    program = app.program(cmd.program_id)
    guard = _guard(cmd)
    if cmd.gate is None:
        return _apply(app, program, cmd, guard, ctx, [])
    resumed = resume_gate(app, program, cmd, cmd.gate, ctx)
    if resumed is not None:
        return resumed
    arms = program.check_split(cmd.alias, dict(cmd.weights), guard)
    control = program.aliases[cmd.alias]
    versions = [arm["version"] for arm in arms if arm["version"] != control]
    candidates = {candidate_role(version): version for version in versions}
    if not candidates:
        raise IllegalTransition(
            f"ending {cmd.alias!r}'s split gives version {control} all its executions "
            "again: there is no candidate to gate (send it without a gate)",
            loc=["gate"],
        )
    facts = {ARMS_WHEN_GATED: program.splits.get(cmd.alias, {}).get("arms", [])}
    return plan_gate(app, program, candidates, control, cmd.gate, cmd, ctx, facts)


def finish_gated_split(app: DspyOps, plan: GatePlan, ctx: CommandContext) -> Outcome:
    """After the gate's runs ended: split if every candidate passed and neither the alias
    nor its split moved meanwhile, else record the refusal. Applying checks the split
    again (a program deprecated while the gate ran rejects the command: nothing applied)."""
    cmd = SetTrafficSplit.model_validate(plan.command)
    program = app.program(plan.program_id)
    verdict = judge(app, plan, cmd.alias, program.aliases.get(cmd.alias), ALIAS_MOVED)
    refusal = verdict.refusal or _split_changed(app, plan, program, cmd.alias)
    if refusal is None:
        return _apply(app, program, cmd, _guard(cmd), ctx, verdict.reports)
    code, message = refusal
    asked = _arms(cmd)
    gates = [report.model_dump(mode="json") for report in verdict.reports]
    program.refuse_split(cmd.alias, asked, code, message, gates, **ctx.meta())
    refused = program_result(
        TrafficSplitRefused,
        program,
        alias=cmd.alias,
        arms=asked,
        current_arms=program.splits.get(cmd.alias, {}).get("arms", []),
        error=ErrorInfo(code=code, message=message),
        gates=verdict.reports,
    )
    return app.record(ctx, refused, program)


def _arms(cmd: SetTrafficSplit) -> list[Arm]:
    """The split asked for, as arms (checked when the gate began)."""
    arms: list[Arm] = [{"version": int(k), "percent": p} for k, p in cmd.weights.items()]
    return sorted(arms, key=lambda arm: arm["version"])


def _split_changed(
    app: DspyOps, plan: GatePlan, program: Program, alias: str
) -> tuple[str, str] | None:
    """Refuse to overwrite a split changed (by a person or the guard) while the gate ran:
    the sender chose the new weights against the split as it was."""
    current = app.evaluation(plan.current_evaluation_id)
    before: list[Arm] = (current.gate or {}).get(ARMS_WHEN_GATED, [])
    now = program.splits.get(alias, {}).get("arms", [])
    if now == before:
        return None
    message = (
        f"{alias!r}'s split changed from {describe(before) or 'none'} to "
        f"{describe(now) or 'none'} while the gate ran: send the split again against it"
    )
    return SPLIT_CHANGED, message


def _apply(
    app: DspyOps,
    program: Program,
    cmd: SetTrafficSplit,
    guard: dict[str, Any] | None,
    ctx: CommandContext,
    gates: list[Any],
) -> Outcome:
    previous = program.splits.get(cmd.alias, {}).get("arms", [])
    program.set_split(cmd.alias, dict(cmd.weights), guard, cmd.reason, **ctx.meta())
    arms = program.splits.get(cmd.alias, {}).get("arms", [])
    result = program_result(
        ProgramTrafficSplitSet,
        program,
        alias=cmd.alias,
        arms=arms,
        previous_arms=previous,
        gates=gates,
    )
    return app.record(ctx, result, program)


def _guard(cmd: SetTrafficSplit) -> dict[str, Any] | None:
    return None if cmd.guard is None else cmd.guard.model_dump()
