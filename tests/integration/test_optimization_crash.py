"""kill -9 of the worker process in the middle of an optimization: the run is never lost.

The command's offset is held until its terminal result is on Kafka, so the restarted
worker gets the command again, finds the run recorded (``resumed``), runs it again and
completes it: one new program version, one terminal result id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from dspyops.aggregates.ids import optimization_uuid
from dspyops.bootstrap import open_store
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer, chat_reply, worker_lm_env
from tests.support.optimization import ANSWERS, register_commands
from tests.support.worker_process import KILL_DRILL_ENV, WorkerProcess
from tests.support.worker_stack import stored_events


def _few_shot_responder(messages: list[dict[str, Any]]) -> str:
    """Over HTTP, the same rule as the in-process script: right only with a demo shown."""
    # The system message describes the format with the same markers: skip it.
    texts = [str(m.get("content", "")) for m in messages if m.get("role") != "system"]
    shown = sum(t.count("[[ ## question ## ]]") for t in texts)
    last = texts[-1].split("[[ ## question ## ]]\n")[-1].split("\n")[0]
    if shown > 1 and last in ANSWERS:
        return chat_reply(answer=ANSWERS[last])
    return chat_reply(answer="I do not know")


async def test_kill_9_during_an_optimization_then_restart_completes_it(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    run_id = f"crash-{unique}"
    optimize = command(
        "OptimizeProgram",
        {
            "program_id": f"add-{unique}",
            "dataset_id": f"sums-{unique}",
            "optimizer": "BootstrapFewShotWithRandomSearch",
            "config": {"num_candidate_programs": 4},
            "optimization_id": run_id,
        },
    )
    log = tmp_path / "worker.log"
    with OpenAIServer(_few_shot_responder, delay_s=0.03) as lm_server:
        env = {**env, **worker_lm_env(lm_server.base_url), **KILL_DRILL_ENV}
        async with TopicReader(bootstrap, topics.results) as results:
            worker = WorkerProcess(env, log).start()
            try:
                setup = register_commands(unique)
                await send_commands(bootstrap, topics, setup)
                await results.results_for([c.id for c in setup], timeout_s=90)
                await send_commands(bootstrap, topics, [optimize])
                # Killed once the baseline is scored: the optimizer is at work.
                await results.wait_for(
                    lambda ms: any(
                        m.get("causationid") == optimize.id
                        and m["type"].endswith("Progress")
                        and m["data"]["step"] >= 1
                        for m in ms
                    ),
                    timeout_s=60,
                )
                worker.kill()
                ended_before = [
                    m
                    for m in results.messages
                    if m.get("causationid") == optimize.id and not m["type"].endswith("Progress")
                ]
                assert not ended_before, "the optimization ended before the worker was killed"
                calls_at_kill = len(lm_server.requests)
                killed = time.monotonic()
                await asyncio.sleep(0.5)
                worker = WorkerProcess(env, log).start()
                found = await results.results_for([optimize.id], timeout_s=150)
                recovered_in = time.monotonic() - killed
            finally:
                worker.stop()
    (completed,) = {r["id"]: r for r in found[optimize.id]}.values()
    mine = [m for m in results.messages if m.get("causationid") == optimize.id]
    for message in mine:
        print(message["type"].rsplit(".", 1)[-1], json.dumps(message["data"]))
    print(
        f"killed after {calls_at_kill} LM calls; completed {recovered_in:.1f} s after the kill, "
        f"{len(lm_server.requests)} LM calls in all"
    )
    assert completed["type"] == "dspyops.result.OptimizationCompleted", completed
    assert completed["data"]["version"] == 2
    assert completed["data"]["baseline_score"] == 0.0
    assert completed["data"]["optimized_score"] == 1.0
    assert "running it again" in log.read_text(errors="replace")
    starts = [m["data"]["message"] for m in mine if m["data"].get("step") == 0]
    assert starts == ["started", "started again after an interruption (2)"], starts
    schema = env["DSPYOPS_EVENT_STORE_SCHEMA"]
    run_events = [
        t.rsplit(".", 1)[-1]
        for (oid, _v, t) in stored_events(database_url, schema)
        if oid == str(optimization_uuid(run_id))
    ]
    counts = Counter(run_events)
    assert counts["Requested"] == 1
    assert counts["Completed"] == 1
    store = open_store(database_url, schema)
    assert store.program(f"add-{unique}").latest_version == 2
