"""The serving history: each serving change of a program is one row holding the whole
state after it, computed from the state before it by one function per kind of change."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from dspyops.aggregates.program import Program
from dspyops.projections.appliers import serving
from dspyops.projections.appliers.audit import AuditTrail
from dspyops.projections.appliers.events import Handlers
from dspyops.projections.appliers.programs import ProgramsApplier
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.appliers.serving import ServingApplier, moved_alias, weights
from dspyops.projections.read_schema import SERVING_CHANGES
from tests.unit.projections.memory_rows import MemoryRows
from tests.unit.projections.test_programs import new_program


def meta(command_id: str, actor: str | None = "ops") -> dict[str, Any]:
    return {"command_id": command_id, "correlation_id": f"corr-{command_id}", "actor": actor}


def project(program: Program) -> list[Row]:
    """Program's events through the programs applier, then the serving applier, as the
    dispatcher hands them; the serving_changes rows."""
    rows = MemoryRows()
    tables: list[Handlers] = [
        ProgramsApplier(cast(Rows, rows), AuditTrail(cast(Rows, rows))).handlers(),
        ServingApplier(cast(Rows, rows)).handlers(),
    ]
    for position, event in enumerate(program.collect_events(), start=1):
        for table in tables:
            handler = table.get(type(event))
            if handler is not None:
                handler(event, position)
    return rows.tables[SERVING_CHANGES.name]


def two_versions() -> Program:
    program = new_program()
    program.update(description=None, instructions="Be brief.", **meta("c-update"))
    return program


def state(aliases: dict[str, int], splits: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"aliases": aliases, "splits": splits or {}}


def test_each_change_is_a_row_with_the_whole_state_after_it() -> None:
    program = two_versions()
    program.deploy(1, **meta("c-deploy", "alice"))
    program.set_alias("staging", 2, "new demos", **meta("c-stage", "frank"))
    program.deploy(2, **meta("c-deploy2", "carol"))
    program.rollback(1, **meta("c-back", "carol"))
    program.remove_alias("staging", "seen enough", **meta("c-unstage", "gina"))
    program.deprecate(**meta("c-end", "dana"))

    rows = project(program)

    assert [
        (r["kind"], r["alias"], r["previous_version"], r["version"], r["state"]) for r in rows
    ] == [
        ("Deployed", "production", None, 1, state({"production": 1})),
        ("AliasSet", "staging", None, 2, state({"production": 1, "staging": 2})),
        ("Deployed", "production", 1, 2, state({"production": 2, "staging": 2})),
        ("RolledBack", "production", 2, 1, state({"production": 1, "staging": 2})),
        ("AliasRemoved", "staging", 2, None, state({"production": 1})),
        # Deprecated ends serving; production was the one alias left, so it is the moved one.
        ("Deprecated", "production", 1, None, state({})),
    ]
    assert [(r["actor"], r["command_id"], r["reason"]) for r in rows] == [
        ("alice", "c-deploy", None),
        ("frank", "c-stage", "new demos"),
        ("carol", "c-deploy2", None),
        ("carol", "c-back", None),
        ("gina", "c-unstage", "seen enough"),
        ("dana", "c-end", None),
    ]
    assert {r["program_id"] for r in rows} == {"p"}
    assert rows[0]["correlation_id"] == "corr-c-deploy"
    # Events 1 and 2 (registered, updated) serve nothing: positions are the events'.
    assert [r["position"] for r in rows] == [3, 4, 5, 6, 7, 8]
    times = [r["occurred_at"] for r in rows]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)


def test_changes_that_serve_nothing_new_add_no_row() -> None:
    program = two_versions()
    program.set_budget(1.0, None, "pilot", **meta("c-budget"))
    program.train(**meta("c-train"))
    assert project(program) == []


def test_a_deprecation_ending_several_aliases_names_none() -> None:
    program = two_versions()
    program.deploy(1, **meta("c1"))
    program.set_alias("canary", 2, None, **meta("c2"))
    program.deprecate(**meta("c3"))
    last = project(program)[-1]
    assert (last["kind"], last["alias"], last["version"], last["state"]) == (
        "Deprecated",
        None,
        None,
        state({}),
    )


def event(**fields: Any) -> Any:
    return SimpleNamespace(**fields)


SPLIT = {"production": {"1": 90, "2": 10}, "canary": {"2": 50, "3": 50}}


def test_the_state_functions_keep_the_splits_they_do_not_change() -> None:
    before = state({"production": 1, "canary": 2}, SPLIT)
    # Moving an alias ends its own split (as in the aggregate), and no other.
    assert serving.deployed(before, event(version=3)) == state(
        {"production": 3, "canary": 2}, {"canary": SPLIT["canary"]}
    )
    assert serving.rolled_back(before, event(version=4))["splits"] == {"canary": SPLIT["canary"]}
    assert serving.alias_set(before, event(alias="staging", version=1)) == state(
        {"production": 1, "canary": 2, "staging": 1}, SPLIT
    )
    assert serving.alias_set(before, event(alias="canary", version=1))["splits"] == {
        "production": SPLIT["production"]
    }
    # A removed alias serves nothing: its split goes with it, the others' stay.
    assert serving.alias_removed(before, event(alias="canary", version=2)) == state(
        {"production": 1}, {"production": SPLIT["production"]}
    )
    assert serving.deprecated(before, event()) == state({})
    # States are values: the one before is unchanged.
    assert before == state({"production": 1, "canary": 2}, SPLIT)


def test_every_serving_event_of_program_has_a_state_function() -> None:
    assert {cls.__name__ for cls in serving.NEXT_STATE} == {
        "Deployed",
        "RolledBack",
        "AliasSet",
        "AliasRemoved",
        "Deprecated",
        "TrafficSplitSet",
        "SplitArmRemoved",
    }
    assert all(getattr(Program, cls.__name__) is cls for cls in serving.NEXT_STATE)


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        (state({}), state({"production": 1}), "production"),
        (state({"production": 1}), state({"production": 1, "a": 2}), "a"),
        (state({"production": 1, "a": 2}), state({}), None),
        (state({"p": 1}), state({"p": 1}, {"p": {"1": 100}}), "p"),
        (state({"production": 1}), state({"production": 1}), None),
    ],
)
def test_the_moved_alias_is_the_one_whose_version_or_split_changed(
    before: dict[str, Any], after: dict[str, Any], moved: str | None
) -> None:
    assert moved_alias(before, after) == moved


def test_weights_are_an_aliass_split_or_all_to_its_version() -> None:
    assert weights(state({"production": 1, "canary": 2}, {"canary": {"2": 50, "3": 50}})) == {
        "production": {"1": 100.0},
        "canary": {"2": 50, "3": 50},
    }
    assert weights(state({})) == {}


def test_splits_set_changed_and_ended_are_rows() -> None:
    program = two_versions()
    program.update(description=None, instructions="Be briefer.", **meta("c-update3"))
    program.deploy(1, **meta("c-deploy"))
    guard = {"max_error_rate": 0.2, "window": 10}
    program.set_split("production", {"1": 80, "2": 10, "3": 10}, guard, "canary", **meta("c-s"))
    program.remove_split_arm("production", 3, 8, 10, **meta("c-guard", "dspyops"))
    program.set_split("production", {"1": 100}, None, "done", **meta("c-end"))
    program.set_split("production", {"1": 50, "2": 50}, None, None, **meta("c-again"))
    program.deploy(2, **meta("c-deploy2"))

    rows = project(program)

    assert [(r["kind"], r["alias"], r["actor"], r["state"]["splits"]) for r in rows] == [
        ("Deployed", "production", "ops", {}),
        ("TrafficSplitSet", "production", "ops", {"production": {"1": 80, "2": 10, "3": 10}}),
        ("SplitArmRemoved", "production", "dspyops", {"production": {"1": 90, "2": 10}}),
        ("TrafficSplitSet", "production", "ops", {}),
        ("TrafficSplitSet", "production", "ops", {"production": {"1": 50, "2": 50}}),
        # Deploying moves production: its split ends.
        ("Deployed", "production", "ops", {}),
    ]
    assert weights(rows[2]["state"]) == {"production": {"1": 90, "2": 10}}
