"""Producing commands and reading results through the real broker, for integration tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dspyops.client.producers import durable_producer
from dspyops.client.security import PLAINTEXT, KafkaSecurity
from dspyops.events.codec import encode
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics, command_topic


async def produce(
    bootstrap: str,
    messages: Iterable[tuple[str, bytes | None, bytes]],
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    producer = durable_producer(bootstrap, security)
    await producer.start()
    try:
        futures = [await producer.send(t, value=v, key=k) for t, k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def send_commands(bootstrap: str, topics: Topics, envelopes: Iterable[Envelope]) -> None:
    await produce(
        bootstrap,
        [
            (
                command_topic(topics, e.short_type, e.data),
                (e.subject or e.id).encode(),
                encode(e),
            )
            for e in envelopes
        ],
    )


async def topic_replication(bootstrap: str, topic: str) -> tuple[set[int], str]:
    """(replica counts of the topic's partitions, its min.insync.replicas), as the broker says."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})]
        )
    finally:
        await admin.close()
    replicas = {len(p["replicas"]) for p in described["partitions"]}
    ((_code, _msg, _type, _name, entries),) = response.resources
    min_isr = next(e[1] for e in entries if e[0] == "min.insync.replicas")
    return replicas, min_isr


@asynccontextmanager
async def temporary_topic(bootstrap: str, name: str, partitions: int) -> AsyncIterator[str]:
    """A topic of a test's own, with one replica, deleted when the block ends."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


def command(command_type: str, data: dict[str, Any], **kwargs: Any) -> Envelope:
    subject = data.get("program_id") or data.get("dataset_id") or data.get("execution_id")
    return command_envelope(command_type, data, subject=subject, **kwargs)


class TopicReader:
    """Reads a topic from the beginning and keeps every message as parsed JSON
    (`read_committed`: only what committed transactions wrote, and plain writes)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        security: KafkaSecurity = PLAINTEXT,
        *,
        isolation_level: str = "read_uncommitted",
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            **security.aiokafka_kwargs(),
            isolation_level=isolation_level,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self.messages: list[dict[str, Any]] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], *, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not done(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s with {len(self.messages)} messages: "
                    f"{self.messages[-3:]}"
                )
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.messages.extend(json.loads(r.value) for r in records if r.value is not None)
        return self.messages

    async def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Keeps reading for `seconds` more: what arrives late (a duplicate) is kept too."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.messages.extend(json.loads(r.value) for r in records if r.value is not None)
        return self.messages

    async def results_for(
        self, command_ids: Iterable[str], *, timeout_s: float = 60.0
    ) -> dict[str, list[dict[str, Any]]]:
        """Every terminal result per command id, once each command has at least one."""
        wanted = set(command_ids)

        def terminal(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for m in messages:
                if m.get("causationid") in wanted and not m["type"].endswith("Progress"):
                    found.setdefault(m["causationid"], []).append(m)
            return found

        await self.wait_for(lambda ms: len(terminal(ms)) == len(wanted), timeout_s=timeout_s)
        return terminal(self.messages)
