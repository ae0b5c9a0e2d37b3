"""The datasets read model: sizes and split sizes (the examples stay in the event store)."""

from __future__ import annotations

from dspyops.aggregates.dataset import DEV, TRAIN, Dataset
from dspyops.projections.appliers.audit import AuditTrail, changes
from dspyops.projections.appliers.events import (
    DatasetRegistered,
    ExamplesAppended,
    Handlers,
    event_class,
)
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.read_schema import DATASETS


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
        self.rows.update(DATASETS, {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        self.audit.record(
            e,
            position,
            kind="dataset",
            aggregate_id=before["dataset_id"],
            program_id=None,
            changed=changes(before, after),
        )


def _sizes(splits: list[str]) -> Row:
    return {"size": len(splits), "train_size": splits.count(TRAIN), "dev_size": splits.count(DEV)}
