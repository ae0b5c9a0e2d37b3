"""The contract's guarantees with a real worker process: dead letters, idempotency, crashes."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path

from dspyops.aggregates.ids import execution_uuid
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.codec import encode
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, produce, send_commands
from tests.support.worker_process import KILL_DRILL_ENV, WorkerProcess
from tests.support.worker_stack import stored_events

SIGNATURE = "question: str, context: str -> answer: str, confidence: float[0, 1]"


async def _topics(env: dict[str, str]) -> Topics:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    await ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], topics.all, partitions=4)
    return topics


def _register(unique: str) -> Envelope:
    return command(
        "RegisterProgram", {"program_id": f"qa-{unique}", "name": "qa", "signature": SIGNATURE}
    )


def _execute(unique: str, n: int, **kwargs: object) -> Envelope:
    inputs = {"question": f"question {n}", "context": "ctx"}
    return command("ExecuteProgram", {"program_id": f"qa-{unique}", "inputs": inputs}, **kwargs)


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_worker_keeps_going(
    env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    topics = await _topics(env)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    unknown_type = encode(_execute(unique, 0)).replace(b"command.ExecuteProgram", b"command.Nope")
    huge = json.dumps(
        {
            "specversion": "1.0",
            "id": "big",
            "source": "t",
            "type": "dspyops.command.ExecuteProgram",
            "data": {"program_id": "x", "inputs": {"question": "x" * 2_000_000}},
        }
    ).encode()
    poison = [
        (topics.executions, b"k1", b"this is not json"),
        (topics.executions, b"k2", b'{"hello": "world"}'),
        (topics.programs, b"k3", unknown_type),
        (topics.executions, b"k4", huge),
        (topics.programs, None, b"\xff\xfe binary"),
    ]
    register, execute = _register(unique), _execute(unique, 1)
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        async with (
            TopicReader(bootstrap, topics.deadletter) as dead,
            TopicReader(bootstrap, topics.results) as results,
        ):
            await produce(bootstrap, poison)
            await send_commands(bootstrap, topics, [register])
            await results.results_for([register.id], timeout_s=90)
            await send_commands(bootstrap, topics, [execute])
            found = await results.results_for([execute.id])
            letters = await dead.wait_for(lambda ms: len(ms) >= len(poison))
        assert worker.alive(), worker.log()
    codes = Counter(m["data"]["error"]["code"] for m in letters)
    assert codes == {"not_json": 2, "not_envelope": 1, "unknown_type": 1, "too_large": 1}
    big = next(m for m in letters if m["data"]["error"]["code"] == "too_large")
    assert big["data"]["payload_bytes"] == len(huge)
    assert big["data"]["truncated"] is True
    assert found[execute.id][0]["type"] == "dspyops.result.ExecutionSucceeded"
    # The offline profile answered: the result says so, the output is labelled.
    assert found[execute.id][0]["data"]["offline"] is True
    assert found[execute.id][0]["data"]["outputs"]["answer"].startswith("[offline]")


async def test_the_same_command_three_times_gives_one_execution_and_three_identical_results(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = await _topics(env)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    register, execute = _register(unique), _execute(unique, 1)
    with WorkerProcess(env, tmp_path / "worker.log"):
        async with TopicReader(bootstrap, topics.results) as results:
            await send_commands(bootstrap, topics, [register])
            await results.results_for([register.id], timeout_s=90)
            for _ in range(3):
                await send_commands(bootstrap, topics, [execute])
            await results.wait_for(
                lambda ms: sum(m.get("causationid") == execute.id for m in ms) == 3
            )
    replies = [m for m in results.messages if m.get("causationid") == execute.id]
    assert len({json.dumps(r["data"], sort_keys=True) for r in replies}) == 1
    assert len({r["id"] for r in replies}) == 1
    events = stored_events(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])
    execution_id = str(execution_uuid(execute.id))
    assert [v for (oid, v, _t) in events if oid == execution_id] == [1, 2]
    executions = {oid for (oid, _v, t) in events if "Execution" in t}
    assert executions == {execution_id}


async def _kill_drill(
    env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    unique: str,
    *,
    executions: int,
    kills: int,
    isolation_level: str = "read_uncommitted",
) -> tuple[list[Envelope], dict[str, list[dict[str, object]]], list[int]]:
    """Sends `executions` commands and kill -9s the worker `kills` times while they run
    (spread over the run, at least 150 results apart), restarting it; returns the commands, every
    terminal result per command, and how many results had come at each kill."""
    env = {**env, **KILL_DRILL_ENV}
    topics = await _topics(env)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    register = _register(unique)
    commands = [_execute(unique, n) for n in range(executions)]
    log = tmp_path / "worker.log"

    def succeeded(ms: list[dict[str, object]]) -> int:
        return sum(str(m["type"]).endswith("ExecutionSucceeded") for m in ms)

    killed_at: list[int] = []
    async with TopicReader(bootstrap, topics.results, isolation_level=isolation_level) as results:
        worker = WorkerProcess(env, log).start()
        try:
            await send_commands(bootstrap, topics, [register])
            await results.results_for([register.id], timeout_s=90)
            await send_commands(bootstrap, topics, commands)
            for _ in range(kills):
                target = succeeded(results.messages) + max(150, executions // (kills + 2))

                def reached(ms: list[dict[str, object]], target: int = target) -> bool:
                    return succeeded(ms) >= target

                await results.wait_for(reached, timeout_s=120)
                worker.kill()
                killed_at.append(succeeded(results.messages))
                assert killed_at[-1] < executions, "the worker finished before it could be killed"
                await asyncio.sleep(0.5)
                worker = WorkerProcess(env, log).start()
            await results.results_for([e.id for e in commands], timeout_s=180 + executions / 50)
            # A result published again would come after the last first one: read on a while.
            await results.drain(3.0)
            found = await results.results_for([e.id for e in commands])
        finally:
            worker.stop()
    events = stored_events(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])
    wanted = {str(execution_uuid(e.id)) for e in commands}
    per_execution = Counter(oid for (oid, _v, t) in events if "Execution" in t)
    assert set(per_execution) == wanted
    assert set(per_execution.values()) == {2}  # requested + succeeded, once each
    return commands, found, killed_at


async def test_kill_9_in_the_middle_of_1000_executions_loses_and_duplicates_nothing(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    _commands, found, killed_at = await _kill_drill(
        env, database_url, tmp_path, unique, executions=1000, kills=1
    )
    for command_id, replies in found.items():
        assert len({r["id"] for r in replies}) == 1, (command_id, replies)
        assert all(str(r["type"]).endswith("ExecutionSucceeded") for r in replies), replies
    duplicates = sum(len(r) - 1 for r in found.values())
    print(f"killed after {killed_at} results; {duplicates} results delivered again after restart")


async def test_with_exactly_once_results_kill_9_twice_leaves_one_result_per_command(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    """DSPYOPS_RESULTS_EXACTLY_ONCE: the outbox and the transactional relay; a
    read_committed consumer sees each command's result once, whatever the kills."""
    exactly_once = {**env, "DSPYOPS_RESULTS_EXACTLY_ONCE": "true"}
    # The full drill of docs/operations.md: DSPYOPS_DRILL_EXECUTIONS=10000 DSPYOPS_DRILL_KILLS=5
    commands, found, killed_at = await _kill_drill(
        exactly_once,
        database_url,
        tmp_path,
        unique,
        executions=int(os.environ.get("DSPYOPS_DRILL_EXECUTIONS", "600")),
        kills=int(os.environ.get("DSPYOPS_DRILL_KILLS", "2")),
        isolation_level="read_committed",
    )
    assert set(found) == {c.id for c in commands}
    for command_id, replies in found.items():
        assert len(replies) == 1, (command_id, replies)
        assert str(replies[0]["type"]).endswith("ExecutionSucceeded"), replies
    print(f"exactly once: killed after {killed_at} results; 0 delivered twice of {len(found)}")
