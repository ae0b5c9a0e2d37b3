"""kill -9 of a worker at ~70 % of a BootstrapFewShotWithRandomSearch run: the worker
started again resumes from the run's checkpoints, makes at most 40 % of the LM calls of
an uninterrupted run, and ends with the same program and scores.

Both runs go through a real `dspyops worker` process, Kafka and PostgreSQL, with the
loopback OpenAI-compatible server as the deterministic LM that counts every request: an
uninterrupted run of one program first (the baseline figure, measured in this test),
then the same run of a second, identical program, killed once ~70 % of its candidates
are checkpointed in the event store.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from dspyops.aggregates.ids import optimization_uuid
from dspyops.bootstrap import open_store
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer, worker_lm_env
from tests.support.optimization import register_commands, same_operand_text
from tests.support.worker_process import KILL_DRILL_ENV, WorkerProcess
from tests.support.worker_stack import stored_events

NUM_CANDIDATE_PROGRAMS = 8
CANDIDATES = NUM_CANDIDATE_PROGRAMS + 3  # zero-shot, labelled demos, unshuffled bootstrap
KILL_AT = math.ceil(0.7 * CANDIDATES)


def _responder(messages: list[dict[str, Any]]) -> str:
    return same_operand_text("\n".join(str(m.get("content", "")) for m in messages) + "\n")


def _optimize(name: str) -> Envelope:
    return command(
        "OptimizeProgram",
        {
            "program_id": f"add-{name}",
            "dataset_id": f"sums-{name}",
            "optimizer": "BootstrapFewShotWithRandomSearch",
            "config": {"num_candidate_programs": NUM_CANDIDATE_PROGRAMS, "max_labeled_demos": 4},
            "optimization_id": f"run-{name}",
        },
    )


def _checkpointed(database_url: str, schema: str, run_id: str) -> int:
    run = str(optimization_uuid(run_id))
    return sum(
        1
        for oid, _v, topic in stored_events(database_url, schema)
        if oid == run and topic.endswith("Optimization.CandidateScored")
    )


async def test_a_random_search_killed_at_70_percent_resumes_from_its_checkpoints(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    schema = env["DSPYOPS_EVENT_STORE_SCHEMA"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    whole, killed = _optimize(f"whole-{unique}"), _optimize(f"killed-{unique}")
    killed_run = f"run-killed-{unique}"
    log = tmp_path / "worker.log"
    began = time.monotonic()
    with OpenAIServer(_responder, delay_s=0.01) as lm_server:
        env = {**env, **worker_lm_env(lm_server.base_url), **KILL_DRILL_ENV}
        async with TopicReader(bootstrap, topics.results) as results:
            worker = WorkerProcess(env, log).start()
            try:
                setup = register_commands(f"whole-{unique}") + register_commands(f"killed-{unique}")
                await send_commands(bootstrap, topics, setup)
                await results.results_for([c.id for c in setup], timeout_s=60)

                before = len(lm_server.requests)
                await send_commands(bootstrap, topics, [whole])
                found = await results.results_for([whole.id], timeout_s=60)
                whole_calls = len(lm_server.requests) - before

                await send_commands(bootstrap, topics, [killed])
                deadline = time.monotonic() + 60
                while _checkpointed(database_url, schema, killed_run) < KILL_AT:
                    assert time.monotonic() < deadline, "the run never reached 70 %"
                    await asyncio.sleep(0.05)
                worker.kill()
                kept = _checkpointed(database_url, schema, killed_run)
                ended = [m for m in results.messages if m.get("causationid") == killed.id]
                assert all(m["type"].endswith("Progress") for m in ended), "it ended before"
                calls_at_kill = len(lm_server.requests)

                worker = WorkerProcess(env, log).start()
                found |= await results.results_for([killed.id], timeout_s=60)
                resumed_calls = len(lm_server.requests) - calls_at_kill
            finally:
                worker.stop()
    took = time.monotonic() - began
    (uninterrupted,) = {r["id"]: r for r in found[whole.id]}.values()
    (completed,) = {r["id"]: r for r in found[killed.id]}.values()
    print(
        f"uninterrupted run: {whole_calls} LM calls; killed with {kept} of {CANDIDATES} "
        f"candidates checkpointed ({calls_at_kill - before - whole_calls} calls made); "
        f"resumed: {resumed_calls} LM calls = {resumed_calls / whole_calls:.0%} of the "
        f"uninterrupted run's; the run counted {completed['data']['lm_calls']} LM calls "
        f"(uninterrupted: {uninterrupted['data']['lm_calls']}); test took {took:.1f} s"
    )
    assert uninterrupted["type"] == "dspyops.result.OptimizationCompleted", uninterrupted
    assert completed["type"] == "dspyops.result.OptimizationCompleted", completed
    assert resumed_calls <= 0.4 * whole_calls
    for field in ("version", "baseline_score", "optimized_score"):
        assert completed["data"][field] == uninterrupted["data"][field], field
    store = open_store(database_url, schema)
    made = store.program(f"add-killed-{unique}").get_version(2)["state"]
    assert made is not None
    assert made == store.program(f"add-whole-{unique}").get_version(2)["state"]
    assert made["demos"], "the search found a program with demos"
    # The counters went on from the last checkpoint: only calls made after it and
    # before the kill are missing from the run's count.
    assert resumed_calls < completed["data"]["lm_calls"] <= uninterrupted["data"]["lm_calls"]
    starts = [
        m["data"]["message"]
        for m in results.messages
        if m.get("causationid") == killed.id and m["data"].get("step") in (0, 1)
    ]
    assert "started again after an interruption (2)" in starts
    assert any("before the interruption" in s for s in starts), starts
