"""The runs and program versions read models copy what pinned runs record: the dataset
version a run took its examples from, its provenance, and the version it produced."""

from __future__ import annotations

from typing import Any, cast

from eventsourcing.domain import Aggregate

from dspyops.aggregates.optimization import Optimization
from dspyops.projections.appliers.audit import AuditTrail
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.appliers.runs import RunsApplier
from dspyops.projections.read_schema import AUDIT_LOG, PROGRAM_VERSIONS, RUNS
from tests.unit.projections.memory_rows import MemoryRows
from tests.unit.projections.test_programs import META, new_program
from tests.unit.projections.test_programs import project as project_program

PROVENANCE = {
    "dspy_version": "3.4.1",
    "dspyops_version": "0.1.0",
    "optimizer_config": {"k": 16},
    "seed": 0,
    "lm_profiles": [
        {"profile": "default", "model": "m", "offline": False, "response_models": ["m-1"]}
    ],
}


def project_runs(*aggregates: Aggregate) -> MemoryRows:
    rows = MemoryRows()
    handlers = RunsApplier(cast(Rows, rows), AuditTrail(cast(Rows, rows))).handlers()
    events = [event for aggregate in aggregates for event in aggregate.collect_events()]
    for position, event in enumerate(events, start=1):
        for cls in type(event).__mro__:
            if cls in handlers:
                handlers[cls](event, position)
                break
    return rows


def optimization(dataset_version: int | None) -> Optimization:
    run = Optimization(
        optimization_id="o1",
        program_id="p",
        dataset_id="d",
        base_version=1,
        optimizer="LabeledFewShot",
        metric="exact_match",
        config={},
        dataset_version=dataset_version,
        **META,
    )
    run.start(**META)
    return run


def test_a_runs_row_shows_its_dataset_version_and_provenance() -> None:
    run = optimization(3)
    run.complete(2, 0.2, 0.8, cast(dict[str, Any], PROVENANCE), **META)
    (row,) = project_runs(run).tables[RUNS.name]
    assert (row["dataset_version"], row["provenance"]) == (3, PROVENANCE)


def test_a_run_recorded_before_pinning_shows_null() -> None:
    run = optimization(None)
    run.complete(2, 0.2, 0.8, **META)
    (row,) = project_runs(run).tables[RUNS.name]
    assert (row["dataset_version"], row["provenance"]) == (None, None)


def test_an_optimized_versions_row_shows_the_dataset_version_that_made_it() -> None:
    program = new_program()
    program.add_optimized_version(
        optimization_id="o1",
        state={},
        optimizer="LabeledFewShot",
        metric="exact_match",
        config={},
        dataset_id="d",
        baseline_score=0.2,
        optimized_score=0.8,
        plugin=None,
        dataset_version=3,
        **META,
    )
    versions = project_program(program).tables[PROGRAM_VERSIONS.name]
    assert [v["dataset_version"] for v in versions] == [None, 3]


def test_a_checkpoint_is_audited_and_leaves_the_runs_row_as_it_was() -> None:
    run = optimization(3)
    spent = {"lm_calls": 12, "prompt_tokens": 0, "completion_tokens": 0}
    run.checkpoint(-2, 0.75, {"demos": [{"question": "q", "answer": "a"}]}, 0.25, spent, **META)
    rows = project_runs(run)
    (row,) = rows.tables[RUNS.name]
    assert (row["status"], row.get("best_score"), row["step"]) == ("running", None, 0)
    entry = rows.tables[AUDIT_LOG.name][-1]
    assert entry["event_type"] == "CandidateScored"
    # The audit entry names the candidate; its state stays in the event store.
    assert entry["changes"] == {"candidate": {"before": None, "after": {"seed": -2, "score": 0.75}}}
