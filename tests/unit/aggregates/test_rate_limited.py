"""A producer over the workers' rate limit: refused, nothing recorded, counted once.

The domain asks `Checks.admission` after looking up the command's stored outcome: a
redelivered command gets what it got before, and a refused one keeps its id free.
"""

from __future__ import annotations

import pytest

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    OptimizationPlan,
    Outcome,
    handle,
    handlers,
    in_memory_env,
)
from dspyops.aggregates.app.checks import Checks
from dspyops.aggregates.errors import ErrorDict
from dspyops.events.commands import (
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
)

SIGNATURE = "question: str -> answer: str"
REFUSAL: ErrorDict = {
    "loc": ["source"],
    "msg": "source 'urn:a' is over the rate limit of 1 per 1 second: send again in 0.5 s",
    "type": "rate_limited",
    "ctx": {"limit": "1 per 1 second", "producer": "urn:a", "retry_after_s": 0.5},
}


class Gate:
    """An admission that refuses while `closed`, and notes every command it was asked about."""

    def __init__(self) -> None:
        self.closed = False
        self.asked: list[tuple[str, str | None, str | None]] = []

    def __call__(self, command_id: str, source: str | None, actor: str | None) -> list[ErrorDict]:
        self.asked.append((command_id, source, actor))
        return [REFUSAL] if self.closed else []


def ctx(command_id: str) -> CommandContext:
    return CommandContext(
        command_id=command_id, correlation_id=command_id, source="urn:a", actor="ann"
    )


def register(app: DspyOps, command_id: str, program_id: str = "p") -> Outcome:
    command = RegisterProgram(program_id=program_id, name="P", signature=SIGNATURE)
    outcome = handle(app, command, ctx(command_id))
    assert isinstance(outcome, Outcome)
    return outcome


def test_a_refused_command_is_answered_not_recorded_and_its_id_stays_free() -> None:
    gate = Gate()
    app = DspyOps(in_memory_env(), checks=Checks(admission=gate))
    gate.closed = True
    refused = register(app, "c1")
    assert refused.rejected
    assert refused.data["errors"] == [REFUSAL]
    assert gate.asked == [("c1", "urn:a", "ann")]
    # Nothing was recorded: the same id, once the producer is under its limit, applies.
    gate.closed = False
    assert register(app, "c1").result_type == "ProgramRegistered"
    assert app.program("p").latest_version == 1


def test_a_redelivered_command_gets_its_stored_outcome_whatever_the_limit() -> None:
    gate = Gate()
    app = DspyOps(in_memory_env(), checks=Checks(admission=gate))
    first = register(app, "c1")
    gate.closed = True
    again = register(app, "c1")
    assert (again.result_type, again.data) == (first.result_type, first.data)
    # Answered from the store: the limit was not even asked (nor counted) the second time.
    assert [command_id for command_id, _, _ in gate.asked] == ["c1"]


def test_the_workers_own_commands_are_never_limited() -> None:
    """A judge's score is recorded as RecordFeedback with a context of the worker's own
    (no producer `source`): the producers' limit is not asked."""
    gate = Gate()
    gate.closed = True
    app = DspyOps(in_memory_env(), checks=Checks(admission=gate))
    command = RegisterProgram(program_id="p", name="P", signature=SIGNATURE)
    own = CommandContext(command_id="own", correlation_id="own", actor="judge:j")
    outcome = handle(app, command, own)
    assert isinstance(outcome, Outcome)
    assert outcome.result_type == "ProgramRegistered"
    assert gate.asked == []


def test_a_redelivered_run_still_in_flight_goes_on_whatever_the_limit() -> None:
    """A worker died while the optimization ran: its command comes again with no outcome
    stored yet. Refused now, the run it started would never end; it resumes instead."""
    gate = Gate()
    app = DspyOps(in_memory_env(), checks=Checks(admission=gate))
    register(app, "reg")
    examples = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]
    dataset = RegisterDataset(dataset_id="d", name="D", examples=examples)
    assert isinstance(handle(app, dataset, ctx("ds")), Outcome)
    optimize = OptimizeProgram(program_id="p", dataset_id="d")
    first = handle(app, optimize, ctx("opt"))
    assert isinstance(first, OptimizationPlan)
    assert not first.resumed
    gate.closed = True
    again = handle(app, optimize, ctx("opt"))
    assert isinstance(again, OptimizationPlan)
    assert again.resumed
    assert [command_id for command_id, _, _ in gate.asked] == ["reg", "ds", "opt"]
    # A new command of the same producer is refused.
    other = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx("opt-2"))
    assert isinstance(other, Outcome)
    assert other.rejected


def test_without_a_limit_the_command_path_reads_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No DSPYOPS_COMMAND_RATE_LIMIT (the default): no 'started before?' read per command."""

    def read(*args: object) -> bool:
        raise AssertionError("looked for an earlier run with no rate limit set")

    monkeypatch.setattr(handlers, "_started_before", read)
    app = DspyOps(in_memory_env())
    assert register(app, "c1").result_type == "ProgramRegistered"
    planned = handle(app, ExecuteProgram(program_id="p", inputs={"question": "q"}), ctx("e1"))
    assert not isinstance(planned, Outcome)
