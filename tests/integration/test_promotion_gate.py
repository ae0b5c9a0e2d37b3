"""A gated DeployProgram through Kafka with the worker in this process and a scripted LM.

The LM answers only when the prompt shows a worked example: v1 (no demos) scores 0 and
the optimized v2 scores 1. With v1 in production, a gated deploy of v2 passes and
deploys; then, with v2 in production, a gated deploy of v1 is refused, production stays
at v2, and the refusal says why: both scores and both runs, recorded as evaluations.
"""

from __future__ import annotations

import json

from dspyops.aggregates.program import Program
from dspyops.bootstrap import open_store
from tests.support.kafka import TopicReader, command
from tests.support.optimization import (
    Stack,
    register_commands,
    send_and_wait,
    settings_for_test,
    stack,
)

__all__ = ["settings_for_test", "stack"]  # fixtures


async def test_a_gate_deploys_a_better_version_and_refuses_a_worse_one(
    stack: Stack, unique: str
) -> None:
    settings, topics, _, _ = stack
    program_id, dataset_id = f"add-{unique}", f"sums-{unique}"
    register, dataset = register_commands(unique)
    optimize = command(
        "OptimizeProgram",
        {
            "program_id": program_id,
            "dataset_id": dataset_id,
            "config": {"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
        },
    )
    gate = {"dataset_id": dataset_id, "metric": "exact_match", "min_delta": 0.5}
    first = command("DeployProgram", {"program_id": program_id, "version": 1})
    better = command("DeployProgram", {"program_id": program_id, "version": 2, "gate": gate})
    worse = command(
        "DeployProgram", {"program_id": program_id, "version": 1, "gate": {**gate, "min_delta": 0}}
    )
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset)
        optimized = await send_and_wait(settings, topics, results, optimize)
        assert optimized[optimize.id]["data"]["version"] == 2, optimized
        await send_and_wait(settings, topics, results, first)
        passed = (await send_and_wait(settings, topics, results, better))[better.id]
        refused = (await send_and_wait(settings, topics, results, worse))[worse.id]

    print("passed:", json.dumps(passed["data"]))
    print("refused:", json.dumps(refused["data"]))
    assert passed["type"] == "dspyops.result.ProgramDeployed", passed
    report = passed["data"]["gate"]
    assert (report["candidate_score"], report["current_score"]) == (1.0, 0.0)
    assert (report["candidate_version"], report["current_version"]) == (2, 1)
    assert passed["data"]["deployed_version"] == 2

    assert refused["type"] == "dspyops.result.DeploymentRefused", refused
    data = refused["data"]
    assert (data["version"], data["deployed_version"]) == (1, 2)
    assert data["error"]["code"] == "gate_not_passed"
    assert "version 1 scored 0" in data["error"]["message"]
    assert "at least 1" in data["error"]["message"]
    assert (data["gate"]["candidate_score"], data["gate"]["current_score"]) == (0.0, 1.0)

    store = open_store(settings.effective_database_url, settings.event_store_schema)
    program = store.program(program_id)
    assert (program.deployed_version, program.aliases["production"]) == (2, 2)
    # The gate's runs are evaluations like any other: scores and per-example results.
    for role, version, score in (("candidate", 1, 0.0), ("current", 2, 1.0)):
        run = store.evaluation(data["gate"][f"{role}_evaluation_id"])
        assert (run.status, run.version_used, run.score) == ("completed", version, score)
        assert run.per_example
        assert len(run.per_example) == len(store.dataset(dataset_id).split("dev"))
    # The audit trail has the refusal as a program event, with the gate's report.
    refusals = [e for e in store.events.get(program.id) if isinstance(e, Program.DeploymentRefused)]
    assert len(refusals) == 1
    assert refusals[0].gate == data["gate"]
