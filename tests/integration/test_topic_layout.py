"""Topics as dspyops creates them on the one local broker: replication that fits it, and a
replication the cluster cannot give refused in one line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dspyops.consumers.topic_admin import Replication, TopicLayoutError, ensure_topics
from tests.support.kafka import topic_replication


@pytest.fixture
async def name(bootstrap_servers: str, unique: str) -> AsyncIterator[str]:
    """A topic name of the test's own, deleted afterwards if it was made."""
    topic = f"test.layout.{unique}"
    yield topic
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            await admin.delete_topics([topic])
    finally:
        await admin.close()


async def test_on_one_broker_topics_get_one_replica_and_min_isr_1(
    bootstrap_servers: str, name: str
) -> None:
    await ensure_topics(bootstrap_servers, [name], partitions=2)
    assert await topic_replication(bootstrap_servers, name) == ({1}, "1")


async def test_more_replicas_than_brokers_is_refused_in_one_line(
    bootstrap_servers: str, name: str
) -> None:
    with pytest.raises(TopicLayoutError) as refused:
        await ensure_topics(
            bootstrap_servers, [name], partitions=2, replication=Replication(factor=3)
        )
    message = str(refused.value)
    assert message.startswith(f"Kafka refused to create topic {name} with 3 replicas on 1 broker")
    assert "\n" not in message
