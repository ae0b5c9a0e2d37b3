"""The automatic guard of a traffic split: a candidate arm failing too often is taken out.

Each worker watches the executions it records: for every guarded candidate arm (any arm
but the alias's own version), the outcomes of its latest `window` executions. When more
than `max_error_rate` of a full window failed, the worker records `SplitArmRemoved` on the
program with actor `dspyops` (its weight goes to the control arm) and the result
`ProgramSplitArmRemoved`. Windows live in the worker's memory: a restart starts them empty,
and N workers each judge their share of the arm's executions (the first to see a full
failing window trips it). The change is an ordinary program change, made only while the
split is still the one the window counted for: a second worker tripping the same arm, or
a window of a split since set again (or changed, or ended), records nothing.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from typing import Any

from eventsourcing.persistence import RecordConflictError

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.plans import ExecutionPlan
from dspyops.aggregates.errors import DomainError
from dspyops.aggregates.program import Program
from dspyops.events.results import ProgramSplitArmRemoved

# Who takes an arm out: the system, not a person.
GUARD_ACTOR = "dspyops"


class ArmWatch:
    """The latest outcomes of every guarded candidate arm this worker recorded."""

    def __init__(self) -> None:
        # One window per (program, alias, arm, split as set): a new split starts afresh.
        self._windows: dict[str, deque[bool]] = {}

    def observe(self, plan: ExecutionPlan, failed: bool) -> tuple[int, int] | None:
        """Count one recorded execution; `(failed, window)` when its arm trips the guard."""
        guard = plan.guard
        if guard is None or plan.route is None:
            return None
        key = json.dumps([plan.program_id, plan.route["alias"], plan.version, guard])
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque(maxlen=guard["window"])
        window.append(failed)
        failures = sum(window)
        if len(window) < guard["window"] or failures / len(window) <= guard["max_error_rate"]:
            return None
        window.clear()
        return failures, guard["window"]


def remove_failing_arm(
    app: DspyOps, plan: ExecutionPlan, cause: CommandContext, failed: int, window: int
) -> Outcome | None:
    """Take `plan`'s arm out of its split; None when it is out already (another worker,
    or a person's change, got there first)."""
    assert plan.route is not None
    assert plan.guard is not None
    alias = plan.route["alias"]
    # Not a command anyone sends or sends again: each trip is its own change. Doing it
    # twice is refused by the program (the arm is out), not by a reused id.
    command_id = str(uuid.uuid4())
    ctx = CommandContext(
        command_id=command_id,
        correlation_id=cause.correlation_id,
        actor=GUARD_ACTOR,
        command_type="SplitGuard",
    )
    try:
        program = app.program(plan.program_id)
        split = program.splits.get(alias)
        if split is None or split["guard"] is None:
            return None
        if {**split["guard"], "arms": split["arms"]} != plan.guard:
            return None  # counted for a split since changed: its window means nothing now
        arms = program.remove_split_arm(alias, plan.version, failed, window, **ctx.meta())
        result = ProgramSplitArmRemoved(
            program_id=program.program_id,
            status=program.status,  # type: ignore[arg-type]
            latest_version=program.latest_version,
            deployed_version=program.deployed_version,
            alias=alias,
            version=plan.version,
            arms=arms,  # type: ignore[arg-type]
            failed=failed,
            window=window,
            max_error_rate=plan.guard["max_error_rate"],
        )
        return app.record(ctx, Outcome.of(result, program.program_id), program)
    except (DomainError, RecordConflictError):
        return None


def guard_of(program: Program, route: dict[str, Any] | None) -> dict[str, Any] | None:
    """What `ArmWatch` needs of the split that chose a candidate arm: its guard and arms;
    None when no guarded split chose, or it chose the control arm."""
    if route is None or route["arm"] is None:
        return None
    split = program.splits[route["alias"]]
    if split["guard"] is None or route["arm"] == program.aliases[route["alias"]]:
        return None
    return {**split["guard"], "arms": split["arms"]}
