"""Optimizations through Kafka with the worker in this process and a scripted LM.

One worker per test: the optimize -> deploy -> execute -> evaluate -> rollback path
(demos must reach the prompt; scores must equal a direct ``dspy.Evaluate``), and
executions measured while an optimization runs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable

import dspy

from dspyops.aggregates.dataset import DEV
from dspyops.bootstrap import open_store
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from dspyops.runtime.evaluate import to_examples
from dspyops.runtime.modules import build_module
from dspyops.runtime.scoring import build_metric
from dspyops.settings import Settings
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.optimization import (
    SIGNATURE,
    Stack,
    of_type,
    prompt_text,
    register_commands,
    send_and_wait,
    settings_for_test,
    stack,
)

__all__ = ["settings_for_test", "stack"]  # fixtures


async def test_optimized_version_carries_demos_into_executions_and_scores_match_evaluate(
    stack: Stack, unique: str
) -> None:
    settings, topics, lm, _ = stack
    program_id, dataset_id = f"add-{unique}", f"sums-{unique}"
    register, dataset = register_commands(unique)
    optimize = command(
        "OptimizeProgram",
        {
            "program_id": program_id,
            "dataset_id": dataset_id,
            "optimizer": "BootstrapFewShot",
            "metric": "exact_match",
            "config": {"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
            "optimization_id": f"opt-{unique}",
        },
    )
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset)
        done = await send_and_wait(settings, topics, results, optimize)
        deploy = command("DeployProgram", {"program_id": program_id, "version": 2})
        deployed = await send_and_wait(settings, topics, results, deploy)
        lm.engine_state.requests.clear()
        question = "What is 6 plus 3?"
        execute = command(
            "ExecuteProgram", {"program_id": program_id, "inputs": {"question": question}}
        )
        executed = await send_and_wait(settings, topics, results, execute)
        prompt = prompt_text(lm.engine_state.requests[-1])
        evaluate = command(
            "EvaluateProgram",
            {"program_id": program_id, "dataset_id": dataset_id, "metric": "exact_match"},
        )
        evaluated = await send_and_wait(settings, topics, results, evaluate)
        register_v3 = command(
            "UpdateProgram", {"program_id": program_id, "instructions": "Add the two numbers."}
        )
        await send_and_wait(settings, topics, results, register_v3)
        deploy_v3 = command("DeployProgram", {"program_id": program_id, "version": 3})
        await send_and_wait(settings, topics, results, deploy_v3)
        # Back to v2, which served before v3.
        rollback = command("RollbackProgram", {"program_id": program_id, "version": 2})
        rolled = await send_and_wait(settings, topics, results, rollback)
        mine = [m for m in results.messages if m.get("causationid") == optimize.id]

    for message in [*of_type(mine, "OptimizationProgress"), done[optimize.id]]:
        print(message["type"].rsplit(".", 1)[-1], json.dumps(message["data"]))
    progress = of_type(mine, "OptimizationProgress")
    assert [p["data"]["step"] for p in progress] == [0, 1, 2, 3]
    completed = done[optimize.id]
    assert completed["type"] == "dspyops.result.OptimizationCompleted", completed
    data = completed["data"]
    assert data["version"] == 2
    assert data["baseline_score"] == 0.0
    assert data["optimized_score"] == 1.0
    assert progress[-1]["data"]["best_score"] == data["optimized_score"]
    assert deployed[deploy.id]["type"] == "dspyops.result.ProgramDeployed"

    # The deployed version's demos are in the prompt the LM received for the execution.
    assert executed[execute.id]["data"]["outputs"]["answer"] == "9"
    assert executed[execute.id]["data"]["version"] == 2
    store = open_store(settings.effective_database_url, settings.event_store_schema)
    state = store.program(program_id).get_version(2)["state"]
    assert state is not None
    demos = state["demos"]
    assert demos, state
    for demo in demos:
        assert demo["question"] in prompt
    print("demos in the execution prompt:", [d["question"] for d in demos])

    # The recorded scores are what dspy.Evaluate says for the same program and dev split.
    compiled = compile_signature(SIGNATURE)
    metric = build_metric("exact_match", {}, list(compiled.output_names))
    devset = to_examples(store.dataset(dataset_id).split(DEV), compiled.input_names)
    direct = {}
    with dspy.context(lm=lm):
        for version, recorded in ((None, "baseline_score"), (state, "optimized_score")):
            program = build_module("Predict", dspy_signature(compiled), version)
            evaluate_directly = dspy.Evaluate(devset=devset, metric=metric, display_progress=False)
            direct[recorded] = evaluate_directly(program).score
            assert direct[recorded] / 100 == data[recorded], (recorded, direct)
    print(f"{len(devset)} dev examples; direct dspy.Evaluate (0-100): {direct}")

    evaluation = evaluated[evaluate.id]
    assert evaluation["type"] == "dspyops.result.EvaluationCompleted", evaluation
    assert evaluation["data"]["score"] == data["optimized_score"]
    assert evaluation["data"]["version"] == 2
    assert evaluation["data"]["examples"] == len(devset)
    run = store.evaluation(evaluate.id)
    assert len(run.per_example) == len(devset)
    assert rolled[rollback.id]["type"] == "dspyops.result.ProgramRolledBack", rolled
    print("deploy:", json.dumps(deployed[deploy.id]["data"]))
    print("rollback:", json.dumps(rolled[rollback.id]["data"]))


async def test_executions_keep_flowing_while_an_optimization_runs(
    stack: Stack, unique: str
) -> None:
    settings, topics, lm, _ = stack
    program_id, dataset_id = f"add-{unique}", f"sums-{unique}"
    register, dataset = register_commands(unique)
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset)
        idle = await _latencies(settings, topics, results, program_id, 10)
        # Every LM call now takes 30 ms: the random search makes hundreds of them.
        lm.engine_state.delay_s = 0.03
        optimize = command(
            "OptimizeProgram",
            {
                "program_id": program_id,
                "dataset_id": dataset_id,
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "config": {"num_candidate_programs": 10, "max_bootstrapped_demos": 2},
            },
        )
        await send_commands(settings.bootstrap_servers, topics, [optimize])
        await results.wait_for(
            lambda ms: any(m["type"].endswith("OptimizationProgress") for m in ms), timeout_s=60
        )
        busy = await _latencies(
            settings, topics, results, program_id, 200, until=lambda: _ended(results, optimize)
        )
        done = await results.results_for([optimize.id], timeout_s=120)
    assert len(busy) >= 5, f"only {len(busy)} executions ran during the optimization"
    assert done[optimize.id][0]["type"] == "dspyops.result.OptimizationCompleted"
    print(
        f"execution round trip, idle ({len(idle)}): median {statistics.median(idle):.0f} ms, "
        f"max {max(idle):.0f} ms; during the optimization ({len(busy)}): median "
        f"{statistics.median(busy):.0f} ms, max {max(busy):.0f} ms"
    )
    # Each execution itself waits 30 ms for the LM; the optimization must not add seconds.
    assert statistics.median(busy) < 1000


def _ended(results: TopicReader, command: Envelope) -> bool:
    return any(
        m.get("causationid") == command.id and not m["type"].endswith("Progress")
        for m in results.messages
    )


async def _latencies(
    settings: Settings,
    topics: Topics,
    results: TopicReader,
    program_id: str,
    n: int,
    until: Callable[[], bool] = lambda: False,
) -> list[float]:
    """Round trips of executions sent one by one; one that ends after `until()` is dropped."""
    latencies: list[float] = []
    for i in range(n):
        execute = command(
            "ExecuteProgram", {"program_id": program_id, "inputs": {"question": f"q{i}"}}
        )
        start = time.monotonic()
        await send_commands(settings.bootstrap_servers, topics, [execute])
        await results.results_for([execute.id], timeout_s=30)
        if until():
            break
        latencies.append((time.monotonic() - start) * 1000)
        await asyncio.sleep(0.05)
    return latencies
