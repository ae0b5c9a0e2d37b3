"""The real broker: partitions, consumer groups, committed offsets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.kafka import temporary_topic

PARTITIONS = 4
MESSAGES = 1000


@pytest.fixture
async def topic(bootstrap_servers: str, unique: str) -> AsyncIterator[str]:
    async with temporary_topic(bootstrap_servers, f"test.groups.{unique}", PARTITIONS) as name:
        yield name


async def _produce(servers: str, topic: str, keys: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for i in keys:
            await producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def _consumer(servers: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )


async def _drain(
    consumers: list[AIOKafkaConsumer], want: int, timeout_s: float = 60
) -> dict[int, list[bytes]]:
    """Poll every consumer until `want` messages arrived; values per consumer index."""
    got: dict[int, list[bytes]] = {i: [] for i in range(len(consumers))}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while sum(map(len, got.values())) < want:
        assert asyncio.get_running_loop().time() < deadline, f"only {got} of {want} arrived"
        for i, consumer in enumerate(consumers):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                got[i].extend(r.value for r in records if r.value is not None)
    return got


async def test_two_consumers_share_partitions_and_a_restart_resumes_after_commit(
    bootstrap_servers: str, topic: str, unique: str
) -> None:
    group = f"test-group-{unique}"
    await _produce(bootstrap_servers, topic, range(MESSAGES))

    first, second = (_consumer(bootstrap_servers, topic, group) for _ in range(2))
    await first.start()
    await second.start()
    try:
        got = await _drain([first, second], MESSAGES)
        # Both members of the group got partitions, and together saw each message once.
        assert first.assignment()
        assert second.assignment()
        assert not set(first.assignment()) & set(second.assignment())
        assert len(got[0]) > 0
        assert len(got[1]) > 0
        values = got[0] + got[1]
        assert len(values) == MESSAGES
        assert set(values) == {f"v{i}".encode() for i in range(MESSAGES)}
        await first.commit()
        await second.commit()
    finally:
        await first.stop()
        await second.stop()

    await _produce(bootstrap_servers, topic, range(MESSAGES, MESSAGES + 100))
    restarted = _consumer(bootstrap_servers, topic, group)
    await restarted.start()
    try:
        got = await _drain([restarted], 100)
        # Exactly the messages after the committed offsets: nothing old is redelivered.
        assert sorted(got[0]) == sorted(f"v{i}".encode() for i in range(MESSAGES, MESSAGES + 100))
        extra = await restarted.getmany(timeout_ms=1000)
        assert not any(extra.values())
        committed = {tp: await restarted.committed(tp) for tp in restarted.assignment()}
        assert sum(v or 0 for v in committed.values()) == MESSAGES
        positions = {tp: await restarted.position(tp) for tp in restarted.assignment()}
        assert sum(positions.values()) == MESSAGES + 100
        assert all(isinstance(tp, TopicPartition) for tp in positions)
    finally:
        await restarted.stop()
