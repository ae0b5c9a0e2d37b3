"""Dataset commands: register a dataset, append examples (each split recorded once)."""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.errors import AlreadyExists
from dspyops.aggregates.ids import dataset_uuid
from dspyops.events.commands import AppendExamples, RegisterDataset
from dspyops.events.results import DatasetRegistered, DatasetResult, ExamplesAppended


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
