"""A sample of the schema-made commands (tests/support/fuzz_messages.py) through Kafka.

Hundreds of generated messages, valid and with one field broken, go to a real worker
process: each with a usable id gets exactly one terminal result, of the kind the
contract says; each that is no usable envelope gets exactly one dead letter; the worker
stays up throughout.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.topics import Topics, command_topic
from tests.support.fuzz_messages import agrees, broken, encoded, expected, outcome, valid
from tests.support.kafka import TopicReader, produce
from tests.support.worker_process import WorkerProcess

PER_COMMAND = 12  # valid and broken each, per command type


def sample() -> list[tuple[str, dict[str, Any]]]:
    """The same deterministic draws every run; usable ids made unique (ids are keys)."""
    drawn: list[tuple[str, dict[str, Any]]] = []
    for name in sorted(COMMAND_TYPES):
        for strategy in (valid(name), broken(name)):
            batch: list[dict[str, Any]] = []

            @settings(
                max_examples=PER_COMMAND,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(strategy)
            def collect(message: dict[str, Any]) -> None:
                batch.append(message)  # noqa: B023 - each run appends to its own batch

            collect()
            drawn += [(name, message) for message in batch]
    for _, message in drawn:
        if isinstance(message.get("id"), str) and message["id"]:
            message["id"] = f"fuzz-{uuid.uuid4().hex}"
    return drawn


async def test_generated_commands_end_as_the_contract_says_through_kafka(
    env: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    messages = [(name, m, expected(name, m)) for name, m in sample()]
    answered = {m["id"]: (name, m, want) for name, m, want in messages if want != "deadletter"}
    dead = [encoded(m) for _, m, want in messages if want == "deadletter"]
    records = [
        (command_topic(topics, name, m.get("data")), b"k", encoded(m)) for name, m, _ in messages
    ]
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        async with (
            TopicReader(bootstrap, topics.results) as results,
            TopicReader(bootstrap, topics.deadletter) as letters,
        ):
            await produce(bootstrap, records)
            replies = await results.results_for(answered, timeout_s=120)
            await letters.wait_for(lambda ms: len(ms) >= len(dead), timeout_s=60)
        assert worker.alive()
    assert Counter(len(r) for r in replies.values()) == {1: len(answered)}
    seen: Counter[str] = Counter()
    for command_id, (name, message, want) in answered.items():
        (reply,) = replies[command_id]
        errors = reply["data"].get("errors", [])
        got = outcome(reply["type"].rsplit(".", 1)[-1], errors)
        assert agrees(want, got, errors), (name, want, got, errors, message)
        seen[got] += 1
    seen["deadletter"] = len(letters.messages)
    # The sample reaches every end the contract has, and the run saw each of them.
    assert {want for _, _, want in messages} == {"handled", "rejected", "deadletter"}
    assert set(+seen) == {"handled", "rejected", "deadletter"}, seen
    # Each dead letter quotes its record whole: exactly the messages expected there.
    assert sorted(m["data"]["payload"] for m in letters.messages) == sorted(
        raw.decode() for raw in dead
    )
    assert len(messages) >= len(COMMAND_TYPES) * 2 * PER_COMMAND - 24
    assert {name for name, _, _ in messages} == set(COMMAND_TYPES)
