"""Dataset commands: register a dataset, append examples (each split recorded once), and
promote executions into examples.

PromoteExecutions reads each execution from the event store (never a read model): an
execution that ended with outputs (a success, or any execution with corrected outputs)
becomes `{**inputs, **outputs}`. Whether those fields fit a program is checked where a
dataset meets a program, when an optimization or evaluation starts
(`Dataset.validate_against`), as for examples appended by hand.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.dataset import Dataset, Example
from dspyops.aggregates.errors import (
    MAX_REPORTED_ERRORS,
    AlreadyExists,
    ErrorDict,
    InvalidInput,
    error,
)
from dspyops.aggregates.execution import REQUESTED
from dspyops.aggregates.ids import dataset_uuid
from dspyops.events.commands import AppendExamples, PromoteExecutions, RegisterDataset
from dspyops.events.results import (
    DatasetRegistered,
    DatasetResult,
    ExamplesAppended,
    ExecutionsPromoted,
)


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
    return app.record(ctx, _result(DatasetRegistered, dataset), dataset)


def append_examples(app: DspyOps, cmd: AppendExamples, ctx: CommandContext) -> Outcome:
    dataset = app.dataset(cmd.dataset_id)
    dataset.append(list(cmd.examples), **ctx.meta())
    result = _result(ExamplesAppended, dataset, appended=len(cmd.examples))
    return app.record(ctx, result, dataset)


def promote_executions(app: DspyOps, cmd: PromoteExecutions, ctx: CommandContext) -> Outcome:
    dataset = app.dataset(cmd.dataset_id)
    sourced = _examples_of(app, cmd.execution_ids)
    skipped = dataset.promote(sourced, **ctx.meta())
    appended = len(sourced) - skipped
    result = _result(ExecutionsPromoted, dataset, appended=appended, skipped=skipped)
    return app.record(ctx, result, dataset)


def _examples_of(app: DspyOps, execution_ids: list[str]) -> list[tuple[str, Example]]:
    """Each execution's id and example; every id that cannot be one is rejected at its
    place in the list (`["execution_ids", i]`)."""
    sourced: list[tuple[str, Example]] = []
    errors: list[ErrorDict] = []
    for index, execution_id in enumerate(execution_ids):
        loc: list[str | int] = ["execution_ids", index]
        execution = app.execution(execution_id)
        if execution is None:
            errors.append(error(loc, f"no execution {execution_id!r}", "not_found"))
            continue
        outputs = execution.labelled_outputs
        if execution.status == REQUESTED:
            errors.append(error(loc, f"execution {execution_id!r} has not ended", "not_ended"))
        elif outputs is None:
            msg = f"execution {execution_id!r} failed and has no corrected outputs"
            errors.append(error(loc, msg, "no_outputs"))
        else:
            sourced.append((execution_id, {**execution.inputs, **outputs}))
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise InvalidInput(errors=errors)
    return sourced


def _result(cls: type[DatasetResult], dataset: Dataset, **extra: Any) -> Outcome:
    result = cls(
        dataset_id=dataset.dataset_id,
        name=dataset.name,
        size=dataset.size,
        train_size=dataset.train_size,
        dev_size=dataset.dev_size,
        **extra,
    )
    return Outcome.of(result, dataset.dataset_id)
