"""The programs applier copies the facts Program's events carry (status, version created)
instead of re-deriving them; only v1 events that did not record a version fall back."""

from __future__ import annotations

from typing import Any, cast

import pytest

from dspyops.aggregates.program import Program
from dspyops.projections.appliers import programs as programs_module
from dspyops.projections.appliers.audit import AuditTrail
from dspyops.projections.appliers.programs import ProgramsApplier
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.read_schema import PROGRAM_VERSIONS, PROGRAMS
from tests.unit.projections.memory_rows import MemoryRows

META: dict[str, Any] = {"command_id": "c", "correlation_id": "c", "actor": None}


def project(program: Program) -> MemoryRows:
    rows = MemoryRows()
    applier = ProgramsApplier(cast(Rows, rows), AuditTrail(cast(Rows, rows)))
    handlers = applier.handlers()
    for position, event in enumerate(program.collect_events(), start=1):
        handlers[type(event)](event, position)
    return rows


def new_program(**facts: Any) -> Program:
    return Program(
        program_id="p",
        name="P",
        signature="text: str -> label: str",
        module="Predict",
        instructions=None,
        description=None,
        field_descriptions={},
        lm="default",
        **META,
        **facts,
    )


def state(rows: MemoryRows) -> tuple[str, int, int | None, list[int]]:
    (program,) = rows.tables[PROGRAMS.name]
    numbers = [v["number"] for v in rows.tables[PROGRAM_VERSIONS.name]]
    return program["status"], program["latest_version"], program["deployed_version"], numbers


def test_status_and_versions_are_copied_from_the_events() -> None:
    # Facts no lifecycle rule would derive: only copying them gives these rows.
    program = new_program(status="imported", version=4)
    program._training_started(status="warming", **META)
    program._updated(description=None, instructions="Be brief.", version=7, **META)
    program._optimized(
        optimization_id="o",
        state={},
        optimizer="X",
        metric="m",
        config={},
        dataset_id="d",
        baseline_score=0.0,
        optimized_score=1.0,
        version=9,
        status="tuned",
        **META,
    )
    program._deployed(version=7, status="live", **META)
    rows = project(program)
    assert state(rows) == ("live", 9, 7, [4, 7, 9])
    audit = [e["changes"] for e in rows.tables["audit_log"]]
    assert audit[1] == {"status": {"before": "imported", "after": "warming"}}
    assert audit[-1]["status"] == {"before": "tuned", "after": "live"}


def test_deprecated_copies_its_status() -> None:
    program = new_program()
    program._deprecated(status="retired", **META)
    assert state(project(program))[0] == "retired"


def test_v1_events_without_a_recorded_version_fall_back_to_latest_plus_one() -> None:
    program = new_program()
    # What a v1 Updated (with instructions) and a v1 Optimized upcast to: version None.
    program._updated(description="d", instructions="Be brief.", version=None, **META)
    program._optimized(
        optimization_id="o",
        state={"demos": []},
        optimizer="X",
        metric="m",
        config={},
        dataset_id="d",
        baseline_score=0.0,
        optimized_score=1.0,
        version=None,
        status="optimized",
        **META,
    )
    program._updated(description="only text", instructions=None, version=None, **META)
    rows = project(program)
    assert state(rows) == ("optimized", 3, None, [1, 2, 3])
    versions = rows.tables[PROGRAM_VERSIONS.name]
    assert [(v["source"], v["based_on"]) for v in versions] == [
        ("registered", None),
        ("updated", 1),
        ("optimized", 2),
    ]


@pytest.mark.parametrize("name", ["DRAFT", "TRAINING", "OPTIMIZED", "DEPLOYED", "DEPRECATED"])
def test_the_applier_holds_no_status_constants(name: str) -> None:
    assert not hasattr(programs_module, name)


def test_a_refused_deployment_is_an_audit_entry_that_changes_no_row() -> None:
    program = new_program()
    gate = {"candidate_score": 0.5, "current_score": 0.6, "min_delta": 0.0}
    program.refuse_deployment(1, "gate_not_passed", "0.5 < 0.6", gate, **META)
    rows = project(program)
    (row,) = rows.tables[PROGRAMS.name]
    assert (row["deployed_version"], row["status"]) == (None, "draft")
    refused = rows.tables["audit_log"][-1]
    assert refused["event_type"] == "DeploymentRefused"
    assert refused["changes"] == {
        "deployment_refused": {
            "before": None,
            "after": {
                "version": 1,
                "code": "gate_not_passed",
                "message": "0.5 < 0.6",
                "gate": gate,
            },
        }
    }


def test_a_refused_split_is_an_audit_entry_that_changes_no_row() -> None:
    program = new_program()
    arms: list[Any] = [{"version": 1, "percent": 90}, {"version": 2, "percent": 10}]
    gates = [{"candidate_version": 2, "candidate_score": 0.5, "current_score": 0.6}]
    program._traffic_split_refused(
        alias="production",
        arms=arms,
        current_arms=[],
        code="gate_not_passed",
        message="0.5 < 0.6",
        gates=gates,
        **META,
    )
    rows = project(program)
    (row,) = rows.tables[PROGRAMS.name]
    assert row["splits"] == {}
    refused = rows.tables["audit_log"][-1]
    assert refused["event_type"] == "TrafficSplitRefused"
    assert refused["changes"] == {
        "traffic_split_refused": {
            "before": None,
            "after": {
                "alias": "production",
                "arms": arms,
                "current_arms": [],
                "code": "gate_not_passed",
                "message": "0.5 < 0.6",
                "gates": gates,
            },
        }
    }


def test_online_evaluation_is_the_rows_column_and_an_audit_entry() -> None:
    program = new_program(status="draft", version=1)
    rows = MemoryRows()
    handlers = ProgramsApplier(cast(Rows, rows), AuditTrail(cast(Rows, rows))).handlers()
    applied = 0

    def apply() -> Any:
        nonlocal applied
        for event in program.collect_events():
            applied += 1
            handlers[type(event)](event, applied)
        (row,) = rows.tables[PROGRAMS.name]
        return row["online_evaluation"]

    assert apply() is None
    program._online_evaluation_set(
        judge="grader", alias="production", sample_percent=12.5, reason="watch", **META
    )
    judged = {"judge": "grader", "alias": "production", "sample_percent": 12.5}
    assert apply() == judged
    entry = rows.tables["audit_log"][-1]
    assert entry["changes"]["online_evaluation"] == {"before": None, "after": judged}
    program._online_evaluation_set(judge=None, alias=None, sample_percent=None, reason=None, **META)
    assert apply() is None
