"""The health page's dead letters, read from a real dead-letter topic: the count from its
offsets, the reasons of the newest per partition, a missing topic left uncreated."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dspyops.api.dead_letters import NEWEST, dead_letters
from dspyops.client.security import KafkaSecurity
from dspyops.events.codec import Undecodable, UndecodableCode, encode
from dspyops.events.deadletter import deadletter_envelope
from dspyops.settings import Settings


@pytest.fixture
async def topic(bootstrap_servers: str, unique: str) -> AsyncIterator[str]:
    name = f"test.deadletter.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


def letter(code: UndecodableCode, offset: int) -> bytes:
    error = Undecodable(code, "could not be read")
    envelope = deadletter_envelope(
        b"\xff", key=None, topic="dspyops.commands.x", partition=0, offset=offset, error=error
    )
    return encode(envelope)


async def test_counts_every_dead_letter_and_the_reasons_of_the_newest(
    settings: Settings, bootstrap_servers: str, topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        # Partition 0: 25 not_json then 5 not_envelope; partition 1: 3 not_json, 1 garbage.
        for offset in range(30):
            code: UndecodableCode = "not_json" if offset < 25 else "not_envelope"
            await producer.send_and_wait(topic, letter(code, offset), partition=0)
        for offset in range(3):
            await producer.send_and_wait(topic, letter("not_json", offset), partition=1)
        await producer.send_and_wait(topic, b"not a dead letter", partition=1)
    finally:
        await producer.stop()
    found = await dead_letters(bootstrap_servers, settings.kafka_security, topic)
    assert found is not None
    assert found.total == 34
    assert found.read == NEWEST + 4
    assert found.reasons == Counter(
        {"not_json": NEWEST - 5 + 3, "not_envelope": 5, "unreadable": 1}
    )


async def test_a_missing_topic_has_none_and_is_not_created(
    settings: Settings, bootstrap_servers: str, unique: str
) -> None:
    name = f"test.deadletter.missing.{unique}"
    found = await dead_letters(bootstrap_servers, settings.kafka_security, name)
    assert found is not None
    assert (found.total, found.read) == (0, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        assert name not in await admin.list_topics()
    finally:
        await admin.close()


async def test_a_broker_that_does_not_answer_is_unknown() -> None:
    assert await dead_letters("127.0.0.1:1", KafkaSecurity(), "dspyops.deadletter", 1.0) is None
