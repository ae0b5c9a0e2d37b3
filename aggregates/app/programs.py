"""Program commands: register, update, train, deploy (gated or not), roll back, deprecate,
set a budget, set and remove aliases (traffic splits: splits.py).

Each handler loads what it changes, calls guarded aggregate methods (which raise a
DomainError before recording anything) and ends with `app.record(...)`, which saves the
changed aggregates and the command's outcome in one transaction. Retries after a
conflict and rejections are `handlers.handle`'s business, not the handlers'.

This module is long because registration checks three kinds of program (one signature, a
pipeline, a plugin) before the short handlers of every other program command.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.gates import (
    CANDIDATE,
    PRODUCTION_CHANGED,
    judge,
    plan_gate,
    resume_gate,
)
from dspyops.aggregates.app.judges import JudgeName, online_judge
from dspyops.aggregates.app.plans import GatePlan
from dspyops.aggregates.errors import AlreadyExists, ErrorDict, InvalidInput
from dspyops.aggregates.ids import program_uuid
from dspyops.aggregates.pipeline import Checkers, check_pipeline
from dspyops.aggregates.program import PIPELINE, PLUGIN_PREFIX, PRODUCTION, Program
from dspyops.events.commands import (
    DeployProgram,
    DeprecateProgram,
    RegisterProgram,
    RemoveAlias,
    RollbackProgram,
    SetAlias,
    SetBudget,
    SetOnlineEvaluation,
    TrainProgram,
    UpdateProgram,
)
from dspyops.events.results import (
    DeploymentRefused,
    ErrorInfo,
    OnlineEvaluationSet,
    ProgramAliasRemoved,
    ProgramAliasSet,
    ProgramBudgetSet,
    ProgramDeployed,
    ProgramDeprecated,
    ProgramRegistered,
    ProgramResult,
    ProgramRolledBack,
    ProgramTrainingStarted,
    ProgramUpdated,
)
from dspyops.signatures import CompiledSignature, compile_signature


def register_program(app: DspyOps, cmd: RegisterProgram, ctx: CommandContext) -> Outcome:
    program_id = cmd.program_id or ctx.command_id
    if app.find(Program, program_uuid(program_id), copy=False) is not None:
        raise AlreadyExists(f"program {program_id!r} exists", loc=["program_id"])
    unknown_lm = app.checks.lm_profile_errors(cmd.lm)
    if unknown_lm:
        raise InvalidInput(errors=unknown_lm)
    if cmd.module.startswith(PLUGIN_PREFIX):
        shape = _plugin_program(app, cmd)
    elif cmd.steps is not None:
        shape = _pipeline_program(app, cmd)
    else:
        shape = _single_program(cmd)
    program = Program(
        program_id=program_id,
        name=cmd.name,
        instructions=cmd.instructions,
        description=cmd.description,
        field_descriptions=dict(cmd.field_descriptions),
        lm=cmd.lm,
        feedback_scale=None if cmd.feedback_scale is None else cmd.feedback_scale.model_dump(),
        **shape,
        **ctx.meta(),
    )
    result = program_result(
        ProgramRegistered,
        program,
        name=program.name,
        signature=program.signature,
        module=program.module,
        lm=program.lm,
    )
    return app.record(ctx, result, program)


def _single_program(cmd: RegisterProgram) -> dict[str, Any]:
    """One signature run by Predict or ChainOfThought, as every program was before."""
    errors = _not_for(cmd, "a one-signature program", "outputs", "options")
    if cmd.signature is None:
        errors.append(
            {"loc": ["signature"], "msg": "give the program's signature", "type": "missing"}
        )
    if errors:
        raise InvalidInput(errors=errors)
    assert cmd.signature is not None
    # Compiling checks the text, the instructions and that every description names a field.
    compiled = _compile(cmd.signature, cmd)
    return {"signature": compiled.text, "module": cmd.module}


def _pipeline_program(app: DspyOps, cmd: RegisterProgram) -> dict[str, Any]:
    """Named steps over the program's signature, checked whole (aggregates/pipeline.py)."""
    errors = _not_for(cmd, "a pipeline", "options")
    if "module" in cmd.model_fields_set:
        msg = "a pipeline's steps name their own module kinds: leave `module` out"
        errors.append({"loc": ["module"], "msg": msg, "type": "not_allowed"})
    if cmd.signature is None:
        msg = "give the pipeline's signature: its inputs and outputs"
        errors.append({"loc": ["signature"], "msg": msg, "type": "missing"})
    if errors:
        raise InvalidInput(errors=errors)
    assert cmd.signature is not None
    assert cmd.steps is not None
    compiled = _compile(cmd.signature, cmd)
    checkers = Checkers(
        corpus_exists=lambda corpus_id: app.corpus_exists(corpus_id),
        tool_errors=app.checks.tools,
        metric_errors=app.checks.metric,
    )
    steps, outputs = check_pipeline(compiled, list(cmd.steps), cmd.outputs, checkers)
    return {"signature": compiled.text, "module": PIPELINE, "steps": steps, "outputs": outputs}


def _plugin_program(app: DspyOps, cmd: RegisterProgram) -> dict[str, Any]:
    """A team's dspy.Module, installed by the operator; its signature is its own."""
    errors = _not_for(cmd, "a plugin program", "steps", "outputs")
    options = dict(cmd.options or {})
    info, problems = app.checks.plugin(cmd.module.removeprefix(PLUGIN_PREFIX), options)
    errors += problems
    if errors or info is None:
        raise InvalidInput(errors=errors)
    compiled = _compile(str(info["signature"]), cmd)
    if cmd.signature is not None and _compile(cmd.signature, cmd).text != compiled.text:
        msg = f"the plugin declares its signature: {compiled.text} (give that, or none)"
        raise InvalidInput(msg, loc=["signature"])
    return {"signature": compiled.text, "module": cmd.module, "options": options, "plugin": info}


def _compile(text: str, cmd: RegisterProgram) -> CompiledSignature:
    return compile_signature(
        text, instructions=cmd.instructions, descriptions=cmd.field_descriptions
    )


def _not_for(cmd: RegisterProgram, what: str, *fields: str) -> list[ErrorDict]:
    return [
        {"loc": [name], "msg": f"{what} takes no {name!r}", "type": "not_allowed"}
        for name in fields
        if getattr(cmd, name) is not None
    ]


def update_program(app: DspyOps, cmd: UpdateProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    if cmd.instructions is not None:
        compile_signature(
            program.signature,
            instructions=cmd.instructions,
            descriptions=program.field_descriptions,
        )
    before = program.latest_version
    program.update(cmd.description, cmd.instructions, **ctx.meta())
    new_version = program.latest_version if program.latest_version != before else None
    return app.record(
        ctx, program_result(ProgramUpdated, program, new_version=new_version), program
    )


def train_program(app: DspyOps, cmd: TrainProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    program.train(**ctx.meta())
    return app.record(ctx, program_result(ProgramTrainingStarted, program), program)


def deploy_program(app: DspyOps, cmd: DeployProgram, ctx: CommandContext) -> Outcome | GatePlan:
    """Deploy now; with a gate, check the deploy now and plan the gate's runs (the
    worker runs them, then `finish_gated_deploy` applies or refuses)."""
    program = app.program(cmd.program_id)
    if cmd.gate is not None:
        resumed = resume_gate(app, program, cmd, cmd.gate, ctx)
        if resumed is not None:
            return resumed
        program.check_deploy(cmd.version)
        candidates = {CANDIDATE: cmd.version}
        return plan_gate(app, program, candidates, program.deployed_version, cmd.gate, cmd, ctx)
    program.deploy(cmd.version, **ctx.meta())
    return app.record(ctx, program_result(ProgramDeployed, program, version=cmd.version), program)


def finish_gated_deploy(app: DspyOps, plan: GatePlan, ctx: CommandContext) -> Outcome:
    """After the gate's runs ended: deploy if the gate passed, else record the refusal.

    The deploy is checked again first: a program deprecated, or the candidate deployed
    by another command, while the gate ran rejects the command (nothing applied).
    """
    program = app.program(plan.program_id)
    program.check_deploy(plan.version)
    verdict = judge(app, plan, PRODUCTION, program.deployed_version, PRODUCTION_CHANGED)
    (report,) = verdict.reports
    if verdict.refusal is None:
        program.deploy(plan.version, **ctx.meta())
        result = program_result(ProgramDeployed, program, version=plan.version, gate=report)
        return app.record(ctx, result, program)
    code, message = verdict.refusal
    gate = report.model_dump(mode="json")
    program.refuse_deployment(plan.version, code, message, gate, **ctx.meta())
    refused = program_result(
        DeploymentRefused,
        program,
        version=plan.version,
        error=ErrorInfo(code=code, message=message),
        gate=report,
    )
    return app.record(ctx, refused, program)


def rollback_program(app: DspyOps, cmd: RollbackProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    previous = program.deployed_version
    program.rollback(cmd.version, **ctx.meta())
    result = program_result(
        ProgramRolledBack, program, version=cmd.version, previous_version=previous
    )
    return app.record(ctx, result, program)


def deprecate_program(app: DspyOps, cmd: DeprecateProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    program.deprecate(**ctx.meta())
    return app.record(ctx, program_result(ProgramDeprecated, program), program)


def set_online_evaluation(app: DspyOps, cmd: SetOnlineEvaluation, ctx: CommandContext) -> Outcome:
    """Judge a sample of the program's executions (aggregates.app.judges), or stop."""
    program = app.program(cmd.program_id)
    picked: JudgeName | None = None
    if cmd.judge is not None:
        judged = app.compiled(program, program.versions[-1])
        picked, errors = online_judge(app, cmd.judge, judged)
        if errors:
            raise InvalidInput(errors=errors)
    program.set_online_evaluation(
        picked.program_id if picked else None,
        picked.alias if picked else None,
        cmd.sample_percent,
        cmd.reason,
        **ctx.meta(),
    )
    result = program_result(
        OnlineEvaluationSet,
        program,
        judge=cmd.judge,
        sample_percent=cmd.sample_percent if cmd.judge is not None else None,
    )
    return app.record(ctx, result, program)


def set_budget(app: DspyOps, cmd: SetBudget, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    program.set_budget(cmd.usd_per_day, cmd.executions_per_minute, cmd.reason, **ctx.meta())
    result = program_result(
        ProgramBudgetSet,
        program,
        usd_per_day=cmd.usd_per_day,
        executions_per_minute=cmd.executions_per_minute,
    )
    return app.record(ctx, result, program)


def set_alias(app: DspyOps, cmd: SetAlias, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    previous = program.aliases.get(cmd.alias)
    program.set_alias(cmd.alias, cmd.version, cmd.reason, **ctx.meta())
    result = program_result(
        ProgramAliasSet, program, alias=cmd.alias, version=cmd.version, previous_version=previous
    )
    return app.record(ctx, result, program)


def remove_alias(app: DspyOps, cmd: RemoveAlias, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    version = program.aliases.get(cmd.alias)
    program.remove_alias(cmd.alias, cmd.reason, **ctx.meta())
    assert version is not None
    result = program_result(ProgramAliasRemoved, program, alias=cmd.alias, version=version)
    return app.record(ctx, result, program)


def program_result(cls: type[ProgramResult], program: Program, **extra: Any) -> Outcome:
    result = cls(
        program_id=program.program_id,
        status=program.status,  # type: ignore[arg-type]
        latest_version=program.latest_version,
        deployed_version=program.deployed_version,
        **extra,
    )
    return Outcome.of(result, program.program_id)
