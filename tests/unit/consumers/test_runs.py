"""RunJobs with an in-memory event store: what the optimizations agent publishes and records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest.mock import patch

import pytest

from dspyops import metrics
from dspyops.aggregates.app import (
    Checks,
    CommandContext,
    DspyOps,
    EvaluationPlan,
    OptimizationPlan,
    Outcome,
    handle,
    optimizations,
)
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.consumers.evaluations import EvaluationJobs
from dspyops.consumers.records import Outgoing
from dspyops.consumers.runs import MAX_STARTS, RunJobs
from dspyops.events.commands import (
    EvaluateProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
    RunBudget,
)
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.optimizers import validate_optimization
from dspyops.runtime.redaction import Redactor
from tests.support.optimization import (
    EXAMPLES,
    SIGNATURE,
    ScriptedProfiles,
    few_shot_lm,
)


def _ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id)


def _jobs(
    delay_s: float = 0.0,
    heartbeat_s: float = 5.0,
    usage: tuple[int, int] = (0, 0),
    **prices: float,
) -> tuple[RunJobs, list[Outgoing]]:
    app = DspyOps(env=in_memory_env(), checks=Checks(optimization=validate_optimization))
    handle(app, RegisterProgram(program_id="p", name="p", signature=SIGNATURE), _ctx("r1"))
    handle(app, RegisterDataset(dataset_id="d", name="d", examples=EXAMPLES), _ctx("r2"))
    published: list[Outgoing] = []

    async def publish(messages: Sequence[Outgoing]) -> None:
        published.extend(messages)

    jobs = RunJobs(
        app=app,
        profiles=ScriptedProfiles(few_shot_lm(delay_s, usage), **prices),
        topics=Topics("t."),
        publish=publish,
        pool=ThreadPoolExecutor(1),
        poll_interval_s=0.01,
        heartbeat_s=heartbeat_s,
        redactor=Redactor(),
    )
    return jobs, published


async def run(
    jobs: RunJobs, envelope: Envelope, command: OptimizeProgram, ctx: CommandContext
) -> Outcome:
    """What the worker does with an OptimizeProgram: plan it, then run the plan."""
    plan = handle(jobs.app, command, ctx)
    if isinstance(plan, Outcome):
        return plan
    assert isinstance(plan, OptimizationPlan)
    return await jobs.optimize(envelope, plan, ctx)


async def test_a_run_publishes_its_steps_and_ends_with_a_new_version() -> None:
    jobs, published = _jobs()
    data: dict[str, Any] = {"program_id": "p", "dataset_id": "d", "optimizer": "LabeledFewShot"}
    envelope = command_envelope("OptimizeProgram", data, subject="p")
    outcome = await run(jobs, envelope, OptimizeProgram.model_validate(data), _ctx(envelope.id))
    assert outcome.result_type == "OptimizationCompleted"
    assert outcome.data["version"] == 2
    steps = [(m.envelope.data or {})["step"] for m in published]
    assert steps == [0, 1, 2, 3]
    assert {m.envelope.causationid for m in published} == {envelope.id}
    assert len({m.envelope.id for m in published}) == 4


async def test_a_runs_progress_is_a_metric_per_program() -> None:
    jobs, _ = _jobs()
    data: dict[str, Any] = {"program_id": "p", "dataset_id": "d", "optimizer": "LabeledFewShot"}
    envelope = command_envelope("OptimizeProgram", data, subject="p")
    progress = metrics.RUN_PROGRESS.labels("p")
    seen: list[float] = []
    real_set = progress.set

    def record(value: float) -> None:
        seen.append(value)
        real_set(value)

    with patch.object(progress, "set", record):
        await run(jobs, envelope, OptimizeProgram.model_validate(data), _ctx(envelope.id))
    assert seen == [0.0, 1 / 3, 2 / 3, 1.0, 1.0]
    sample = {"program_id": "p"}
    assert metrics.WORKER.get_sample_value("dspyops_optimization_progress_ratio", sample) == 1.0


async def test_a_run_interrupted_too_often_fails_with_the_reason() -> None:
    jobs, published = _jobs()
    data: dict[str, Any] = {"program_id": "p", "dataset_id": "d", "optimization_id": "o"}
    envelope = command_envelope("OptimizeProgram", data, subject="p")
    command = OptimizeProgram.model_validate(data)
    handle(jobs.app, command, _ctx(envelope.id))
    for _ in range(MAX_STARTS):
        optimizations.record_progress(jobs.app, "o", 0, 3, None)
    outcome = await run(jobs, envelope, command, _ctx(envelope.id))
    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "interrupted"
    assert published == []


async def test_a_worker_stopping_mid_run_ends_the_run_thread_and_records_no_outcome() -> None:
    jobs, _ = _jobs(delay_s=0.05)
    data: dict[str, Any] = {
        "program_id": "p",
        "dataset_id": "d",
        "optimizer": "BootstrapFewShotWithRandomSearch",
        "config": {"num_candidate_programs": 16},
        "optimization_id": "o",
    }
    envelope = command_envelope("OptimizeProgram", data, subject="p")
    task = asyncio.create_task(
        run(jobs, envelope, OptimizeProgram.model_validate(data), _ctx(envelope.id))
    )
    await asyncio.sleep(0.5)
    task.cancel()
    stopping = time.monotonic()
    await asyncio.to_thread(jobs.pool.shutdown, wait=True)
    assert time.monotonic() - stopping < 2
    assert task.cancelled()
    # Still open: the redelivered command will start it again.
    assert jobs.app.optimization("o").is_open
    assert jobs.app.stored_outcome(envelope.id) is None


async def test_a_long_compile_sends_heartbeats_with_the_metric_calls_so_far() -> None:
    jobs, published = _jobs(delay_s=0.01, heartbeat_s=0.1)
    data: dict[str, Any] = {
        "program_id": "p",
        "dataset_id": "d",
        "optimizer": "BootstrapFewShotWithRandomSearch",
        "config": {"num_candidate_programs": 3},
    }
    envelope = command_envelope("OptimizeProgram", data, subject="p")
    outcome = await run(jobs, envelope, OptimizeProgram.model_validate(data), _ctx(envelope.id))
    assert outcome.result_type == "OptimizationCompleted"
    beats = [
        m.envelope.data or {}
        for m in published
        if "metric calls so far" in (m.envelope.data or {})["message"]
    ]
    assert beats
    assert all(b["step"] == 1 for b in beats)
    steps = [(m.envelope.data or {})["step"] for m in published]
    assert steps == sorted(steps)
    # Candidates scored on the dev split while compiling raise the best score early.
    best = [(m.envelope.data or {})["best_score"] for m in published[1:]]
    assert best == sorted(best)
    assert best[-1] == 1.0


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def optimize(jobs: RunJobs, **data: Any) -> Outcome:
    data = {"program_id": "p", "dataset_id": "d", **data}
    envelope = command_envelope("OptimizeProgram", data, subject="p").model_copy(
        update={"traceparent": TRACEPARENT}
    )
    return await run(jobs, envelope, OptimizeProgram.model_validate(data), _ctx(envelope.id))


async def test_a_run_says_what_it_spent_in_its_progress_and_its_result() -> None:
    jobs, published = _jobs(usage=(100, 20))

    outcome = await optimize(jobs, optimizer="LabeledFewShot")

    assert outcome.result_type == "OptimizationCompleted"
    # The baseline and the optimized program are each scored on the dev split.
    calls = outcome.data["lm_calls"]
    assert calls > 0
    assert outcome.data["usage"] == {
        "prompt_tokens": 100 * calls,
        "completion_tokens": 20 * calls,
        "total_tokens": 120 * calls,
    }
    assert outcome.data["cost_usd"] is None  # the scripted model has no price
    # Progress carries the command's trace context on, as results do.
    assert {(m.envelope.model_extra or {}).get("traceparent") for m in published} == {TRACEPARENT}
    spent = [(m.envelope.data or {})["lm_calls"] for m in published]
    # "started" is published before the run counts anything; then calls so far, growing.
    assert spent[0] is None
    counted = spent[1:]
    assert counted
    assert counted == sorted(counted)
    assert 0 < counted[-1] <= calls


async def test_a_run_over_its_lm_call_budget_fails_with_what_it_spent() -> None:
    jobs, _ = _jobs(usage=(100, 20))

    outcome = await optimize(jobs, optimizer="BootstrapFewShot", budget={"max_lm_calls": 3})

    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "budget_exceeded"
    assert "the budget allows 3" in outcome.data["error"]["message"]
    # One DSPy call at a time here: it stops at the limit.
    assert outcome.data["lm_calls"] == 3
    assert outcome.data["usage"]["total_tokens"] == 360
    # BootstrapFewShot scores no candidate while compiling: nothing to keep.
    assert outcome.data["kept_version"] is None
    assert jobs.app.program("p").latest_version == 1


# Random search with 2 candidate programs scores, on the dev split (4 examples, one LM
# call each): the baseline (0.0), then the zero-shot candidate (0.0, calls 5-8), then the
# labelled-demos candidate (1.0, calls 9-12), before it bootstraps more.
RANDOM_SEARCH = {
    "optimizer": "BootstrapFewShotWithRandomSearch",
    "config": {"num_candidate_programs": 2},
}


async def test_a_run_stopped_over_budget_keeps_its_best_candidate_as_a_version() -> None:
    jobs, _ = _jobs(usage=(100, 20))

    outcome = await optimize(jobs, **RANDOM_SEARCH, budget={"max_lm_calls": 12})

    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "budget_exceeded"
    assert "kept its best candidate as version 2" in outcome.data["error"]["message"]
    assert outcome.data["lm_calls"] == 12
    assert outcome.data["kept_version"] == 2
    assert (outcome.data["baseline_score"], outcome.data["optimized_score"]) == (0.0, 1.0)
    # The version a completed run would have made, from the candidate with demos.
    program = jobs.app.program("p")
    assert (program.latest_version, program.status) == (2, "optimized")
    version = program.get_version(2)
    run = jobs.app.optimization(outcome.data["optimization_id"])
    assert version["optimization_id"] == run.optimization_id
    assert (version["baseline_score"], version["optimized_score"]) == (0.0, 1.0)
    kept_state = version["state"]
    assert kept_state is not None
    assert kept_state["demos"]
    assert (run.status, run.kept_version) == ("failed", 2)


@pytest.mark.parametrize(
    "max_lm_calls",
    [
        8,  # only the zero-shot candidate was scored: no better than the baseline
        11,  # stopped while scoring the labelled candidate: a partial score counts not
    ],
)
async def test_a_run_stopped_before_a_candidate_beat_the_baseline_keeps_nothing(
    max_lm_calls: int,
) -> None:
    jobs, _ = _jobs(usage=(100, 20))

    outcome = await optimize(jobs, **RANDOM_SEARCH, budget={"max_lm_calls": max_lm_calls})

    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "budget_exceeded"
    assert "kept" not in outcome.data["error"]["message"]
    assert outcome.data["kept_version"] is None
    assert jobs.app.program("p").latest_version == 1
    assert jobs.app.optimization(outcome.data["optimization_id"]).kept_version is None


async def test_a_dollar_budget_stops_a_priced_run() -> None:
    # $1 per million prompt tokens, $4 per million completion tokens: 180 µ$ per call.
    jobs, _ = _jobs(usage=(100, 20), input_cost_per_million=1.0, output_cost_per_million=4.0)

    outcome = await optimize(jobs, optimizer="LabeledFewShot", budget={"max_usd": 0.0005})

    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "budget_exceeded"
    assert outcome.data["lm_calls"] == 3  # 3 x $0.00018 = $0.00054 >= $0.0005
    assert outcome.data["cost_usd"] == pytest.approx(3 * 0.00018)


async def test_a_dollar_budget_needs_a_known_price() -> None:
    jobs, _ = _jobs()

    outcome = await optimize(jobs, optimizer="LabeledFewShot", budget={"max_usd": 1.0})

    assert outcome.result_type == "OptimizationFailed"
    assert outcome.data["error"]["code"] == "unknown_price"
    assert "input_cost_per_million" in outcome.data["error"]["message"]
    assert outcome.data["lm_calls"] is None  # refused before any call


async def test_an_evaluation_over_its_budget_fails_with_what_it_spent() -> None:
    jobs, _ = _jobs(usage=(100, 20))
    evaluations = EvaluationJobs(
        app=jobs.app,
        profiles=jobs.profiles,
        pool=ThreadPoolExecutor(1),
        poll_interval_s=0.01,
        redactor=Redactor(),
    )
    command = EvaluateProgram(program_id="p", dataset_id="d", budget=RunBudget(max_lm_calls=2))
    plan = handle(jobs.app, command, _ctx("e-over"))
    assert isinstance(plan, EvaluationPlan), plan

    outcome = await evaluations.evaluate(command_envelope("EvaluateProgram", {}), plan, _ctx("e"))

    assert outcome.result_type == "EvaluationFailed"
    assert outcome.data["error"]["code"] == "budget_exceeded"
    assert outcome.data["lm_calls"] == 2
    assert outcome.data["usage"]["prompt_tokens"] == 200
