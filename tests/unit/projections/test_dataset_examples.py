"""A dataset's examples on the read side: one row each, numbered in the order they were
added, with the dataset version that added it and the execution it was promoted from."""

from __future__ import annotations

from typing import Any, cast

from dspyops.aggregates.dataset import Dataset
from dspyops.projections.appliers.audit import AuditTrail
from dspyops.projections.appliers.datasets import DatasetsApplier
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.read_schema import DATASET_EXAMPLES
from tests.unit.projections.memory_rows import MemoryRows

META: dict[str, Any] = {"command_id": "c", "correlation_id": "k", "actor": "ann"}


def project(dataset: Dataset) -> list[Row]:
    rows = MemoryRows()
    handlers = DatasetsApplier(cast(Rows, rows), AuditTrail(cast(Rows, rows))).handlers()
    for position, event in enumerate(dataset.collect_events(), start=1):
        handlers[type(event)](event, position)
    return rows.tables[DATASET_EXAMPLES.name]


def example(n: int) -> dict[str, Any]:
    return {"question": f"q{n}", "answer": f"a{n}"}


def test_each_example_is_a_row_with_its_version_and_source() -> None:
    dataset = Dataset.register("d", "D", [example(1), example(2)], 0.5, **META)
    dataset.append([example(3)], **{**META, "actor": "bob"})
    dataset.promote([("exec-9", example(4)), ("exec-10", example(5))], **META)

    rows = project(dataset)

    assert [(r["number"], r["dataset_version"], r["source_execution_id"]) for r in rows] == [
        (1, 1, None),
        (2, 1, None),
        (3, 2, None),
        (4, 3, "exec-9"),
        (5, 3, "exec-10"),
    ]
    assert [r["example"] for r in rows] == [example(n) for n in range(1, 6)]
    # The split is the aggregate's, recorded in the event, not computed again here.
    assert [r["split"] for r in rows] == dataset.splits
    assert [r["actor"] for r in rows] == ["ann", "ann", "bob", "ann", "ann"]
    assert {r["dataset_id"] for r in rows} == {"d"}
