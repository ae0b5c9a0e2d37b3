"""A gated SetTrafficSplit through Kafka with the worker in this process and a scripted LM.

The LM answers only when the prompt shows a worked example: v1 (no demos) scores 0 and
the optimized v2 scores 1. With v1 in production, a gated canary of v2 passes and is
applied; then, with v2 in production and a small v1 split, a gated split giving v1 half
the traffic is refused: the split stays as it was, and the refusal says why (both scores,
both runs), recorded as a program event.
"""

from __future__ import annotations

import json

from dspyops.aggregates.program import Program
from dspyops.bootstrap import open_store
from dspyops.events.envelope import Envelope
from tests.support.kafka import TopicReader, command
from tests.support.optimization import (
    Stack,
    register_commands,
    send_and_wait,
    settings_for_test,
    stack,
)

__all__ = ["settings_for_test", "stack"]  # fixtures


async def test_a_gate_applies_a_split_to_a_better_version_and_refuses_a_worse_one(
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

    def split(weights: dict[str, int], **data: object) -> Envelope:
        return command("SetTrafficSplit", {"program_id": program_id, "weights": weights, **data})

    better = split({"1": 90, "2": 10}, gate=gate)
    small = split({"2": 95, "1": 5})
    worse = split({"2": 50, "1": 50}, gate={**gate, "min_delta": 0})
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset)
        optimized = await send_and_wait(settings, topics, results, optimize)
        assert optimized[optimize.id]["data"]["version"] == 2, optimized
        deploy_v1 = command("DeployProgram", {"program_id": program_id, "version": 1})
        await send_and_wait(settings, topics, results, deploy_v1)
        passed = (await send_and_wait(settings, topics, results, better))[better.id]
        deploy_v2 = command("DeployProgram", {"program_id": program_id, "version": 2})
        await send_and_wait(settings, topics, results, deploy_v2, small)
        refused = (await send_and_wait(settings, topics, results, worse))[worse.id]

    print("passed:", json.dumps(passed["data"]))
    print("refused:", json.dumps(refused["data"]))
    assert passed["type"] == "dspyops.result.ProgramTrafficSplitSet", passed
    assert passed["data"]["arms"] == [{"version": 1, "percent": 90}, {"version": 2, "percent": 10}]
    (report,) = passed["data"]["gates"]
    assert (report["candidate_score"], report["current_score"]) == (1.0, 0.0)
    assert (report["candidate_version"], report["current_version"]) == (2, 1)

    assert refused["type"] == "dspyops.result.TrafficSplitRefused", refused
    data = refused["data"]
    assert data["error"]["code"] == "gate_not_passed"
    assert "version 1 scored 0" in data["error"]["message"]
    assert "version 2 in production scored 1" in data["error"]["message"]
    assert data["current_arms"] == [{"version": 1, "percent": 5}, {"version": 2, "percent": 95}]
    (report,) = data["gates"]
    assert (report["candidate_score"], report["current_score"]) == (0.0, 1.0)

    store = open_store(settings.effective_database_url, settings.event_store_schema)
    program = store.program(program_id)
    # The split is the one set before the refused one: untouched.
    assert program.splits["production"]["arms"] == data["current_arms"]
    for role, version, score in (("candidate", 1, 0.0), ("current", 2, 1.0)):
        run = store.evaluation(report[f"{role}_evaluation_id"])
        assert (run.status, run.version_used, run.score) == ("completed", version, score)
    refusals = [
        e for e in store.events.get(program.id) if isinstance(e, Program.TrafficSplitRefused)
    ]
    assert len(refusals) == 1
    assert (refusals[0].code, refusals[0].gates) == ("gate_not_passed", data["gates"])
