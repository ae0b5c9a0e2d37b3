"""Aliases: named pointers to a program's versions (SetAlias, RemoveAlias), `production`
moved by deploy and rollback only, and ExecuteProgram addressing a version by alias."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dspyops.aggregates.app import DspyOps, ExecutionPlan, Outcome, handle
from dspyops.aggregates.errors import InvalidInput
from dspyops.aggregates.program import Program
from dspyops.events.commands import (
    DeployProgram,
    DeprecateProgram,
    RemoveAlias,
    RollbackProgram,
    SetAlias,
    UpdateProgram,
)
from tests.support.executions import complete
from tests.unit.aggregates.test_application import (
    Ids,
    execute,
    log_length,
    optimized,
    program_from_older_snapshot,
    register,
    topics_since,
)


def three_versions(app: DspyOps, ctx: Ids) -> None:
    """Program "p" with v1 (registered), v2 (optimized), v3 (updated)."""
    register(app, ctx)
    assert optimized(app, ctx).result_type == "OptimizationCompleted"
    handle(app, UpdateProgram(program_id="p", instructions="Answer in one word."), ctx())
    assert app.program("p").latest_version == 3


def version_of(plan: Any) -> int:
    assert isinstance(plan, ExecutionPlan), plan
    return plan.version


def rejected(outcome: Any) -> tuple[str, list[str | int], str]:
    assert isinstance(outcome, Outcome), outcome
    assert outcome.result_type == "CommandRejected", outcome.data
    (error,) = outcome.data["errors"]
    return error["type"], error["loc"], error["msg"]


def test_set_move_and_remove_an_alias_keep_actor_and_reason(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    set_ = handle(app, SetAlias(program_id="p", alias="staging", version=2, reason="try"), ctx())
    assert set_.result_type == "ProgramAliasSet", set_.data
    assert (set_.data["alias"], set_.data["version"], set_.data["previous_version"]) == (
        "staging",
        2,
        None,
    )
    moved = handle(app, SetAlias(program_id="p", alias="staging", version=3), ctx())
    assert (moved.data["version"], moved.data["previous_version"]) == (3, 2)
    handle(app, SetAlias(program_id="p", alias="canary-2", version=1), ctx())
    assert app.program("p").aliases == {"staging": 3, "canary-2": 1}
    removed = handle(app, RemoveAlias(program_id="p", alias="canary-2", reason="done"), ctx())
    assert removed.result_type == "ProgramAliasRemoved", removed.data
    assert (removed.data["alias"], removed.data["version"]) == ("canary-2", 1)
    program = app.program("p")
    assert program.aliases == {"staging": 3}
    # An alias changes no status and no deployed version.
    assert (program.status, program.deployed_version) == ("optimized", None)
    events = [e for e in app.events.get(program.id) if isinstance(e, Program.AliasSet)]
    assert [(e.alias, e.version, e.previous_version, e.reason, e.actor) for e in events] == [
        ("staging", 2, None, "try", "t"),
        ("staging", 3, 2, None, "t"),
        ("canary-2", 1, None, None, "t"),
    ]
    (gone,) = [e for e in app.events.get(program.id) if isinstance(e, Program.AliasRemoved)]
    assert (gone.alias, gone.version, gone.reason, gone.actor) == ("canary-2", 1, "done", "t")


def test_deploy_and_rollback_move_production(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    handle(app, SetAlias(program_id="p", alias="staging", version=3), ctx())
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    assert app.program("p").aliases == {"staging": 3, "production": 2}
    handle(app, DeployProgram(program_id="p", version=3), ctx())
    handle(app, RollbackProgram(program_id="p", version=2), ctx())
    program = app.program("p")
    assert program.aliases == {"staging": 3, "production": 2}
    assert program.deployed_version == 2


@pytest.mark.parametrize("command", ["set", "remove"])
def test_production_moves_only_by_deploy_and_rollback(app: DspyOps, ctx: Ids, command: str) -> None:
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    start = log_length(app)
    given: SetAlias | RemoveAlias = (
        SetAlias(program_id="p", alias="production", version=3)
        if command == "set"
        else RemoveAlias(program_id="p", alias="production")
    )
    kind, loc, msg = rejected(handle(app, given, ctx()))
    assert (kind, loc) == ("illegal_transition", ["alias"])
    assert "DeployProgram" in msg
    assert "RollbackProgram" in msg
    assert topics_since(app, start) == ["Handled"]
    assert app.program("p").aliases == {"production": 2}


def test_an_alias_points_at_an_existing_version(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    start = log_length(app)
    kind, loc, _ = rejected(handle(app, SetAlias(program_id="p", alias="x", version=4), ctx()))
    assert (kind, loc) == ("not_found", ["version"])
    handle(app, SetAlias(program_id="p", alias="x", version=2), ctx())
    kind, loc, msg = rejected(handle(app, SetAlias(program_id="p", alias="x", version=2), ctx()))
    assert (kind, loc) == ("illegal_transition", ["version"])
    assert "already" in msg
    kind, loc, msg = rejected(handle(app, RemoveAlias(program_id="p", alias="y"), ctx()))
    assert (kind, loc) == ("not_found", ["alias"])
    assert msg.endswith("its aliases: x")
    # Refusals record only their handled-command records; the one SetAlias its event.
    assert topics_since(app, start).count("AliasSet") == 1


@pytest.mark.parametrize(
    "alias", ["Staging", "1canary", "-x", "", "a" * 33, "stag ing", "stag_ing", "prod!"]
)
def test_an_alias_name_is_checked_on_the_wire_and_in_the_aggregate(
    app: DspyOps, ctx: Ids, alias: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        SetAlias(program_id="p", alias=alias, version=1)
    assert raised.value.errors()[0]["loc"] == ("alias",)
    three_versions(app, ctx)
    program = app.program("p")
    with pytest.raises(InvalidInput) as refused:
        program.set_alias(alias, 1, None, command_id="c", correlation_id="c", actor=None)
    assert refused.value.errors[0]["loc"] == ["alias"]
    assert program.aliases == {}


def test_longest_alias_name_is_accepted(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    name = "a" + "-9" * 15 + "z"
    assert len(name) == 32
    outcome = handle(app, SetAlias(program_id="p", alias=name, version=1), ctx())
    assert outcome.result_type == "ProgramAliasSet", outcome.data


def test_a_deprecated_program_takes_no_alias_changes(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    handle(app, SetAlias(program_id="p", alias="staging", version=2), ctx())
    assert handle(app, DeprecateProgram(program_id="p"), ctx()).result_type == ("ProgramDeprecated")
    for given in (
        SetAlias(program_id="p", alias="staging", version=3),
        SetAlias(program_id="p", alias="canary", version=3),
        RemoveAlias(program_id="p", alias="staging"),
    ):
        kind, loc, msg = rejected(handle(app, given, ctx()))
        assert (kind, loc) == ("illegal_transition", ["status"])
        assert "deprecated" in msg
    assert app.program("p").aliases == {"staging": 2}


def test_execute_by_alias_by_version_or_by_default(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    # Never deployed: the latest version, as before aliases; `production` is not set.
    plan = execute(app, ctx())
    assert version_of(plan) == 3
    kind, loc, msg = rejected(execute(app, ctx(), alias="production"))
    assert (kind, loc) == ("not_found", ["alias"])
    assert "no version is deployed" in msg
    handle(app, SetAlias(program_id="p", alias="canary", version=1), ctx())
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    by_alias = execute(app, ctx(), alias="canary")
    assert version_of(by_alias) == 1
    by_default = execute(app, ctx())
    assert version_of(by_default) == 2
    production = execute(app, ctx(), alias="production")
    assert version_of(production) == 2
    by_version = execute(app, ctx(), version=3)
    assert version_of(by_version) == 3


def test_execute_refuses_version_and_alias_together_and_unknown_aliases(
    app: DspyOps, ctx: Ids
) -> None:
    three_versions(app, ctx)
    handle(app, SetAlias(program_id="p", alias="canary", version=1), ctx())
    start = log_length(app)
    kind, loc, _ = rejected(execute(app, ctx(), version=1, alias="canary"))
    assert (kind, loc) == ("invalid_input", ["alias"])
    kind, loc, msg = rejected(execute(app, ctx(), alias="nope"))
    assert (kind, loc) == ("not_found", ["alias"])
    assert "canary" in msg
    assert app.program("p").aliases == {"canary": 1}
    assert set(topics_since(app, start)) <= {"Handled"}


def test_a_redelivered_execution_keeps_the_version_it_was_planned_with(
    app: DspyOps, ctx: Ids
) -> None:
    three_versions(app, ctx)
    handle(app, SetAlias(program_id="p", alias="canary", version=1), ctx())
    c = ctx("exec-a")
    first = execute(app, c, alias="canary")
    assert version_of(first) == 1
    complete(app, first, c, outputs={"answer": "a", "confidence": 1})
    handle(app, SetAlias(program_id="p", alias="canary", version=3), ctx())
    again = execute(app, c, alias="canary")
    assert isinstance(again, Outcome)
    assert again.data["version"] == 1


def test_a_program_snapshot_from_before_aliases_loads(app: DspyOps, ctx: Ids) -> None:
    three_versions(app, ctx)
    handle(app, DeployProgram(program_id="p", version=2), ctx())
    # As class version 4 wrote it: no aliases.
    program = program_from_older_snapshot(app, "p", 4, "aliases")
    assert program.aliases == {"production": 2}
    assert program.serving_version(alias="production")["number"] == 2
    # And one of a program never deployed: no aliases at all.
    register(app, ctx, program_id="q")
    assert program_from_older_snapshot(app, "q", 4, "aliases").aliases == {}
