"""Program commands: register, update, train, deploy, roll back, deprecate.

Each handler loads what it changes, calls guarded aggregate methods (which raise a
DomainError before recording anything) and ends with `app.record(...)`, which saves the
changed aggregates and the command's outcome in one transaction. Retries after a
conflict and rejections are `handlers.handle`'s business, not the handlers'.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.errors import AlreadyExists, InvalidInput
from dspyops.aggregates.ids import program_uuid
from dspyops.aggregates.program import Program
from dspyops.events.commands import (
    DeployProgram,
    DeprecateProgram,
    RegisterProgram,
    RollbackProgram,
    TrainProgram,
    UpdateProgram,
)
from dspyops.events.results import (
    ProgramDeployed,
    ProgramDeprecated,
    ProgramRegistered,
    ProgramResult,
    ProgramRolledBack,
    ProgramTrainingStarted,
    ProgramUpdated,
)
from dspyops.signatures import compile_signature


def register_program(app: DspyOps, cmd: RegisterProgram, ctx: CommandContext) -> Outcome:
    program_id = cmd.program_id or ctx.command_id
    if app.find(Program, program_uuid(program_id), copy=False) is not None:
        raise AlreadyExists(f"program {program_id!r} exists", loc=["program_id"])
    # Compiling checks the text, the instructions and that every description names a field.
    compiled = compile_signature(
        cmd.signature, instructions=cmd.instructions, descriptions=cmd.field_descriptions
    )
    unknown_lm = app.checks.lm_profile_errors(cmd.lm)
    if unknown_lm:
        raise InvalidInput(errors=unknown_lm)
    program = Program(
        program_id=program_id,
        name=cmd.name,
        signature=compiled.text,
        module=cmd.module,
        instructions=cmd.instructions,
        description=cmd.description,
        field_descriptions=dict(cmd.field_descriptions),
        lm=cmd.lm,
        **ctx.meta(),
    )
    result = _program_result(
        ProgramRegistered,
        program,
        name=program.name,
        signature=program.signature,
        module=program.module,
        lm=program.lm,
    )
    return app.record(ctx, result, program)


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
        ctx, _program_result(ProgramUpdated, program, new_version=new_version), program
    )


def train_program(app: DspyOps, cmd: TrainProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    program.train(**ctx.meta())
    return app.record(ctx, _program_result(ProgramTrainingStarted, program), program)


def deploy_program(app: DspyOps, cmd: DeployProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    program.deploy(cmd.version, **ctx.meta())
    return app.record(ctx, _program_result(ProgramDeployed, program, version=cmd.version), program)


def rollback_program(app: DspyOps, cmd: RollbackProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    previous = program.deployed_version
    program.rollback(cmd.version, **ctx.meta())
    result = _program_result(
        ProgramRolledBack, program, version=cmd.version, previous_version=previous
    )
    return app.record(ctx, result, program)


def deprecate_program(app: DspyOps, cmd: DeprecateProgram, ctx: CommandContext) -> Outcome:
    program = app.program(cmd.program_id)
    program.deprecate(**ctx.meta())
    return app.record(ctx, _program_result(ProgramDeprecated, program), program)


def _program_result(cls: type[ProgramResult], program: Program, **extra: Any) -> Outcome:
    result = cls(
        program_id=program.program_id,
        status=program.status,  # type: ignore[arg-type]
        latest_version=program.latest_version,
        deployed_version=program.deployed_version,
        **extra,
    )
    return Outcome.of(result, program.program_id)
