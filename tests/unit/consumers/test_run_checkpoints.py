"""Checkpoints of a random search run, through RunJobs and an in-memory event store: each
candidate is recorded, and a run started again skips those recorded and ends the same."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dspyops.aggregates.app import (
    Checks,
    CommandContext,
    DspyOps,
    OptimizationPlan,
    Outcome,
    handle,
    optimizations,
)
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.consumers.records import Outgoing
from dspyops.consumers.runs import RunJobs
from dspyops.events.commands import OptimizeProgram, RegisterDataset, RegisterProgram
from dspyops.events.envelope import command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.optimizers import validate_optimization
from dspyops.runtime.redaction import Redactor
from tests.support.optimization import EXAMPLES, SIGNATURE, ScriptedProfiles, same_operand_reply
from tests.support.scripted_lm import ScriptedLM

SEARCH: dict[str, Any] = {
    "program_id": "p",
    "dataset_id": "d",
    "optimization_id": "o",
    "optimizer": "BootstrapFewShotWithRandomSearch",
    "config": {"num_candidate_programs": 4, "max_labeled_demos": 4},
}
SEEDS = list(range(-3, 4))


def _ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id)


class Stack:
    """An app with program p and dataset d, and the jobs running its optimizations."""

    def __init__(self) -> None:
        self.app = DspyOps(env=in_memory_env(), checks=Checks(optimization=validate_optimization))
        handle(self.app, RegisterProgram(program_id="p", name="p", signature=SIGNATURE), _ctx("r1"))
        dataset = RegisterDataset(dataset_id="d", name="d", examples=EXAMPLES, dev_fraction=0.3)
        handle(self.app, dataset, _ctx("r2"))
        self.lm = ScriptedLM(same_operand_reply, usage=(10, 2))
        self.published: list[Outgoing] = []

        async def publish(messages: Sequence[Outgoing]) -> None:
            self.published.extend(messages)

        self.jobs = RunJobs(
            app=self.app,
            profiles=ScriptedProfiles(self.lm),
            topics=Topics("t."),
            publish=publish,
            pool=ThreadPoolExecutor(1),
            poll_interval_s=0.01,
            redactor=Redactor(),
        )
        self.envelope = command_envelope("OptimizeProgram", SEARCH, subject="p")
        self.command = OptimizeProgram.model_validate(SEARCH)

    def plan(self) -> OptimizationPlan:
        plan = handle(self.app, self.command, _ctx(self.envelope.id))
        assert isinstance(plan, OptimizationPlan)
        return plan

    async def optimize(self) -> Outcome:
        return await self.jobs.optimize(self.envelope, self.plan(), _ctx(self.envelope.id))

    @property
    def calls(self) -> int:
        return len(self.lm.engine_state.requests)

    def messages(self) -> list[str]:
        return [(m.envelope.data or {})["message"] for m in self.published]


@pytest.fixture(scope="module")
def fresh() -> tuple[Stack, Outcome]:
    """One uninterrupted run, shared by the tests that compare with it."""
    stack = Stack()
    return stack, asyncio.run(stack.optimize())


async def test_each_candidate_is_recorded_as_a_checkpoint(fresh: tuple[Stack, Outcome]) -> None:
    stack, outcome = fresh
    assert outcome.result_type == "OptimizationCompleted"
    run = stack.app.optimization("o")
    assert list(run.candidates) == SEEDS
    spent = [c["spent"]["lm_calls"] for c in run.candidates.values()]
    assert spent == sorted(spent)
    assert spent[0] > 0
    assert spent[-1] < outcome.data["lm_calls"]
    assert {c["baseline_score"] for c in run.candidates.values()} == {
        outcome.data["baseline_score"]
    }
    assert max(c["score"] for c in run.candidates.values()) == outcome.data["optimized_score"]
    version = stack.app.program("p").get_version(2)
    assert version["state"] in [c["state"] for c in run.candidates.values()]
    # Progress is as before: started, then the three steps.
    steps = [(m.envelope.data or {})["step"] for m in stack.published]
    assert steps[0] == 0
    assert steps[-1] == 3


@pytest.mark.parametrize("kept", [1, 5])
async def test_a_run_started_again_skips_its_checkpoints_and_ends_as_the_uninterrupted(
    fresh: tuple[Stack, Outcome], kept: int
) -> None:
    done, completed = fresh
    recorded = list(done.app.optimization("o").candidates.values())[:kept]
    again = Stack()
    # The first start: planned, reported started, then `kept` candidates recorded and the
    # worker died.
    again.plan()
    optimizations.record_progress(again.app, "o", 0, 3, None)
    for checkpoint in recorded:
        assert optimizations.record_checkpoint(again.app, "o", **checkpoint)

    outcome = await again.optimize()

    assert outcome.result_type == "OptimizationCompleted", outcome.data
    for field in ("version", "baseline_score", "optimized_score"):
        assert outcome.data[field] == completed.data[field]
    state = again.app.program("p").get_version(2)["state"]
    assert state == done.app.program("p").get_version(2)["state"]
    # Only the rest was made: no baseline, no recorded candidate...
    carried = recorded[-1]["spent"]["lm_calls"]
    assert again.calls == done.calls - carried
    # ...and the run's counters add what was spent before to what was spent since.
    assert outcome.data["lm_calls"] == completed.data["lm_calls"]
    assert outcome.data["usage"] == completed.data["usage"]
    assert list(again.app.optimization("o").candidates) == SEEDS
    assert "started again after an interruption (2)" in again.messages()
    assert any("before the interruption" in m for m in again.messages())


async def test_a_checkpoint_after_a_failed_lm_call_is_not_recorded() -> None:
    stack = Stack()
    # Every 40th call fails: the run fails (lm_calls_failed), and the candidates after
    # the first failure are not recorded, to be made again by a run started again.
    real = stack.lm.engine_state.respond

    def respond(request: Any) -> Any:
        if len(stack.lm.engine_state.requests) == 39:
            stack.lm.engine_state.requests.append(request)
            raise RuntimeError("the LM is down")
        return real(request)

    stack.lm.engine_state.respond = respond  # type: ignore[method-assign]
    outcome = await stack.optimize()
    assert outcome.result_type == "OptimizationFailed"
    run = stack.app.optimization("o")
    assert [c["spent"]["lm_calls"] for c in run.candidates.values()] == sorted(
        c["spent"]["lm_calls"] for c in run.candidates.values()
    )
    assert all(c["spent"]["lm_calls"] < 40 for c in run.candidates.values())
    assert 0 < len(run.candidates) < len(SEEDS)


async def test_an_optimizer_that_cannot_resume_records_no_checkpoint() -> None:
    stack = Stack()
    stack.command = OptimizeProgram.model_validate({**SEARCH, "optimizer": "BootstrapFewShot"})
    stack.command = stack.command.model_copy(update={"config": {}})
    outcome = await stack.optimize()
    assert outcome.result_type == "OptimizationCompleted"
    assert stack.app.optimization("o").candidates == {}


async def test_a_run_started_again_and_stopped_over_budget_keeps_its_best_checkpoint(
    fresh: tuple[Stack, Outcome],
) -> None:
    done, completed = fresh
    recorded = list(done.app.optimization("o").candidates.values())[:2]
    best = max(recorded, key=lambda c: c["score"])
    assert best["score"] > best["baseline_score"], "a checkpoint must beat the baseline"
    again = Stack()
    carried = recorded[-1]["spent"]["lm_calls"]
    budgeted = {**SEARCH, "budget": {"max_lm_calls": carried + 3}}
    again.command = OptimizeProgram.model_validate(budgeted)
    again.plan()
    optimizations.record_progress(again.app, "o", 0, 3, None)
    for checkpoint in recorded:
        optimizations.record_checkpoint(again.app, "o", **checkpoint)

    outcome = await again.optimize()

    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "budget_exceeded"
    # The budget counted what was spent before the restart: 3 calls more were allowed.
    assert again.calls == 3
    assert outcome.data["kept_version"] == 2
    assert outcome.data["optimized_score"] == best["score"]
    assert again.app.program("p").get_version(2)["state"] == best["state"]
    assert completed.data["baseline_score"] == outcome.data["baseline_score"]
