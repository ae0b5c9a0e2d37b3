"""The serving_changes read model: what served a program, one row per change, from
Program's events.

A state is `{"aliases": {alias: version}, "splits": {alias: {version: percent}}}`:
`aliases` holds `production` (the deployed version) and those SetAlias set; `splits` the
traffic split of an alias that serves several versions (SetTrafficSplit). Each kind
of change has one small function `(state before, event) -> state after`, and `NEXT_STATE`
maps the event class to it: a new kind of change is one function and one line there.
Each row keeps the whole state after its change, so the state at any instant is the one
after the last change at or before it, read without replaying anything.

States are JSON in the read table, where keys are text: a split's version keys are
strings once stored ("3"); the versions `aliases` points at stay numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dspyops.aggregates.program import PRODUCTION, Program
from dspyops.aggregates.traffic import Arm
from dspyops.projections.appliers.audit import meta
from dspyops.projections.appliers.events import Handlers, ProgramRolledBack, Recorded, event_class
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.read_schema import PROGRAMS, SERVING_CHANGES

State = dict[str, Any]
StateStep = Callable[[State, Any], State]


def empty() -> State:
    """Nothing serves: before the first deploy, and after a deprecation."""
    return {"aliases": {}, "splits": {}}


def _point(state: State, alias: str, version: int) -> State:
    # Moving an alias ends its split, as in the aggregate (aggregates/program.py).
    return {
        "aliases": {**state["aliases"], alias: version},
        "splits": {a: s for a, s in state["splits"].items() if a != alias},
    }


def _split(state: State, alias: str, arms: list[Arm]) -> State:
    """`alias` split by `arms`; fewer than two arms: no split, its version serves all."""
    splits = {a: s for a, s in state["splits"].items() if a != alias}
    if len(arms) > 1:
        splits[alias] = {str(arm["version"]): arm["percent"] for arm in arms}
    return {**state, "splits": splits}


def traffic_split_set(state: State, e: Program.TrafficSplitSet) -> State:
    return _split(state, e.alias, e.arms)


def split_arm_removed(state: State, e: Program.SplitArmRemoved) -> State:
    return _split(state, e.alias, e.arms)


def deployed(state: State, e: Program.Deployed) -> State:
    return _point(state, PRODUCTION, e.version)


def rolled_back(state: State, e: ProgramRolledBack) -> State:
    return _point(state, PRODUCTION, e.version)


def alias_set(state: State, e: Program.AliasSet) -> State:
    return _point(state, e.alias, e.version)


def alias_removed(state: State, e: Program.AliasRemoved) -> State:
    # A removed alias serves nothing: any split it had goes with it.
    return {
        **state,
        "aliases": {a: v for a, v in state["aliases"].items() if a != e.alias},
        "splits": {a: s for a, s in state["splits"].items() if a != e.alias},
    }


def deprecated(state: State, e: Program.Deprecated) -> State:
    # A deprecated program runs no executions: every alias stops serving.
    return empty()


NEXT_STATE: dict[type, StateStep] = {
    Program.Deployed: deployed,
    event_class(Program, "RolledBack"): rolled_back,
    Program.AliasSet: alias_set,
    Program.AliasRemoved: alias_removed,
    Program.Deprecated: deprecated,
    Program.TrafficSplitSet: traffic_split_set,
    Program.SplitArmRemoved: split_arm_removed,
}


def moved_alias(before: State, after: State) -> str | None:
    """The one alias whose version or split the change moved; None when it moved several
    (a deprecation ends every alias) or none."""
    named = before["aliases"].keys() | after["aliases"].keys()
    named |= before["splits"].keys() | after["splits"].keys()
    moved = [
        alias
        for alias in sorted(named)
        if before["aliases"].get(alias) != after["aliases"].get(alias)
        or before["splits"].get(alias) != after["splits"].get(alias)
    ]
    return moved[0] if len(moved) == 1 else None


def weights(state: State) -> dict[str, dict[str, int]]:
    """Each alias's versions with the percent of its traffic each one gets: its split
    when one is set, else all of it to the version the alias points at."""
    return {
        alias: dict(state["splits"].get(alias) or {str(version): 100})
        for alias, version in state["aliases"].items()
    }


class ServingApplier:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def handlers(self) -> Handlers:
        return dict.fromkeys(NEXT_STATE, self.changed)

    def changed(self, e: Recorded, position: int) -> None:
        program_id = self.rows.select(PROGRAMS, {"id": e.originator_id})["program_id"]
        last = self.rows.last(SERVING_CHANGES, {"program_id": program_id})
        before = empty() if last is None else last["state"]
        after = NEXT_STATE[type(e)](before, e)
        alias = moved_alias(before, after)
        self.rows.insert(
            SERVING_CHANGES,
            {
                "position": position,
                "program_id": program_id,
                "kind": type(e).__name__,
                "alias": alias,
                "previous_version": None if alias is None else before["aliases"].get(alias),
                "version": None if alias is None else after["aliases"].get(alias),
                "state": after,
                # Deploy, rollback and deprecation carry no reason; alias changes may.
                "reason": getattr(e, "reason", None),
                **meta(e),
                "occurred_at": e.timestamp,
            },
        )
