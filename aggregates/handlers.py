"""Command handlers: plain functions `(app, command, ctx) -> Outcome`, one table.

Each handler loads what it changes, calls guarded aggregate methods (which raise a
DomainError before recording anything) and ends with `app.record(...)`, which saves the
changed aggregates and the command's outcome in one transaction. Retries after a
conflict and rejections are `DspyOps.handle`'s business, not the handlers'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dspyops.aggregates.context import CommandContext, Outcome
from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.errors import AlreadyExists, NotFound
from dspyops.aggregates.ids import dataset_uuid, program_uuid
from dspyops.aggregates.outcomes import handled_record, run_context
from dspyops.aggregates.program import Program
from dspyops.events.commands import (
    AppendExamples,
    CancelOptimization,
    Command,
    DeployProgram,
    DeprecateProgram,
    RegisterDataset,
    RegisterProgram,
    RollbackProgram,
    TrainProgram,
    UpdateProgram,
)
from dspyops.events.results import (
    DatasetRegistered,
    DatasetResult,
    ExamplesAppended,
    ProgramDeployed,
    ProgramDeprecated,
    ProgramRegistered,
    ProgramResult,
    ProgramRolledBack,
    ProgramTrainingStarted,
    ProgramUpdated,
)
from dspyops.signatures import compile_signature

if TYPE_CHECKING:
    from dspyops.aggregates.application import DspyOps

Handler = Callable[["DspyOps", Any, CommandContext], Outcome]


def register_program(app: DspyOps, cmd: RegisterProgram, ctx: CommandContext) -> Outcome:
    program_id = cmd.program_id or ctx.command_id
    if app.find(Program, program_uuid(program_id), copy=False) is not None:
        raise AlreadyExists(f"program {program_id!r} exists", loc=["program_id"])
    # Compiling checks the text, the instructions and that every description names a field.
    compiled = compile_signature(
        cmd.signature, instructions=cmd.instructions, descriptions=cmd.field_descriptions
    )
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


def register_dataset(app: DspyOps, cmd: RegisterDataset, ctx: CommandContext) -> Outcome:
    dataset_id = cmd.dataset_id or ctx.command_id
    if app.find(Dataset, dataset_uuid(dataset_id), copy=False) is not None:
        raise AlreadyExists(f"dataset {dataset_id!r} exists", loc=["dataset_id"])
    dataset = Dataset.register(
        dataset_id=dataset_id,
        name=cmd.name,
        examples=list(cmd.examples),
        dev_fraction=cmd.dev_fraction,
        **ctx.meta(),
    )
    return app.record(ctx, _dataset_result(DatasetRegistered, dataset), dataset)


def append_examples(app: DspyOps, cmd: AppendExamples, ctx: CommandContext) -> Outcome:
    dataset = app.dataset(cmd.dataset_id)
    dataset.append(list(cmd.examples), **ctx.meta())
    result = _dataset_result(ExamplesAppended, dataset, appended=len(cmd.examples))
    return app.record(ctx, result, dataset)


def cancel_optimization(app: DspyOps, cmd: CancelOptimization, ctx: CommandContext) -> Outcome:
    """Cancel a run; the asking OptimizeProgram command ends with the same outcome.

    Both outcomes are stored in this one save, so the running job only has to notice
    (`DspyOps.is_cancelled`) and stop; completing it afterwards returns the stored outcome.
    """
    run = app.optimization(cmd.optimization_id)
    if run.program_id != cmd.program_id:
        raise NotFound(
            f"optimization {cmd.optimization_id!r} is not of program {cmd.program_id!r}",
            loc=["optimization_id"],
        )
    run.cancel("cancelled on request", **ctx.meta())
    outcome = app.cancel_outcome(run, "cancelled on request")
    original = handled_record(run_context(run, "OptimizeProgram"), outcome)
    return app.record(ctx, outcome, run, original)


COMMAND_HANDLERS: dict[type[Command], Handler] = {
    RegisterProgram: register_program,
    UpdateProgram: update_program,
    TrainProgram: train_program,
    DeployProgram: deploy_program,
    RollbackProgram: rollback_program,
    DeprecateProgram: deprecate_program,
    RegisterDataset: register_dataset,
    AppendExamples: append_examples,
    CancelOptimization: cancel_optimization,
}


def _program_result(cls: type[ProgramResult], program: Program, **extra: Any) -> Outcome:
    result = cls(
        program_id=program.program_id,
        status=program.status,  # type: ignore[arg-type]
        latest_version=program.latest_version,
        deployed_version=program.deployed_version,
        **extra,
    )
    return Outcome.of(result, program.program_id)


def _dataset_result(cls: type[DatasetResult], dataset: Dataset, **extra: Any) -> Outcome:
    result = cls(
        dataset_id=dataset.dataset_id,
        name=dataset.name,
        size=dataset.size,
        train_size=dataset.train_size,
        dev_size=dataset.dev_size,
        **extra,
    )
    return Outcome.of(result, dataset.dataset_id)
