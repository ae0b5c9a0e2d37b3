"""The datasets read models: each dataset's sizes and split sizes, and its examples, one
row each with the dataset version that added it and the execution it came from."""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.dataset import DEV, TRAIN, Dataset
from dspyops.projections.appliers.audit import AuditTrail, changes, meta
from dspyops.projections.appliers.events import (
    DatasetRegistered,
    ExamplesAppended,
    Handlers,
    event_class,
)
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.read_schema import DATASET_EXAMPLES, DATASETS


class DatasetsApplier:
    def __init__(self, rows: Rows, audit: AuditTrail) -> None:
        self.rows = rows
        self.audit = audit

    def handlers(self) -> Handlers:
        return {
            event_class(Dataset, "Registered"): self.registered,
            event_class(Dataset, "ExamplesAppended"): self.examples_appended,
        }

    def registered(self, e: DatasetRegistered, position: int) -> None:
        sizes = _sizes(e.splits)
        self.rows.insert(
            DATASETS,
            {
                "id": e.originator_id,
                "dataset_id": e.dataset_id,
                "name": e.name,
                "dev_fraction": e.dev_fraction,
                **sizes,
                "created_at": e.timestamp,
                "updated_at": e.timestamp,
                "position": position,
            },
        )
        self._add_examples(e, position, e.dataset_id, e.examples, e.splits, None, already=0)
        after = {"name": e.name, "dev_fraction": e.dev_fraction, **sizes}
        self.audit.record(
            e,
            position,
            kind="dataset",
            aggregate_id=e.dataset_id,
            program_id=None,
            changed=changes(None, after),
        )

    def examples_appended(self, e: ExamplesAppended, position: int) -> None:
        before = self.rows.select(DATASETS, {"id": e.originator_id})
        added = _sizes(e.splits)
        after = {name: before[name] + added[name] for name in added}
        self._add_examples(
            e,
            position,
            before["dataset_id"],
            e.examples,
            e.splits,
            e.source_execution_ids,
            already=before["size"],
        )
        self.rows.update(DATASETS, {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        self.audit.record(
            e,
            position,
            kind="dataset",
            aggregate_id=before["dataset_id"],
            program_id=None,
            changed=changes(before, after),
        )

    def _add_examples(
        self,
        e: DatasetRegistered | ExamplesAppended,
        position: int,
        dataset_id: str,
        examples: list[dict[str, Any]],
        splits: list[str],
        sources: list[str] | None,
        *,
        already: int,
    ) -> None:
        """One row per example, numbered after the `already` stored (one statement)."""
        recorded = meta(e)
        self.rows.insert_many(
            DATASET_EXAMPLES,
            [
                {
                    "dataset_id": dataset_id,
                    "number": already + offset + 1,
                    "split": split,
                    "example": example,
                    "source_execution_id": None if sources is None else sources[offset],
                    "dataset_version": e.originator_version,
                    "added_at": e.timestamp,
                    "command_id": recorded["command_id"],
                    "actor": recorded["actor"],
                    "position": position,
                }
                for offset, (example, split) in enumerate(zip(examples, splits, strict=True))
            ],
        )


def _sizes(splits: list[str]) -> Row:
    return {"size": len(splits), "train_size": splits.count(TRAIN), "dev_size": splits.count(DEV)}
