"""The health page's dead letters, read from a real dead-letter topic: the count from its
offsets, the reasons of every one, tallied on from one load to the next (only the new
records read), within a time budget (how many of how many when it ends first), counted
again from the new beginning after retention dropped records; a missing topic left
uncreated."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from dspyops.api.dead_letters import Tally, dead_letters
from dspyops.client.security import KafkaSecurity
from dspyops.events.codec import Undecodable, UndecodableCode, encode
from dspyops.events.deadletter import deadletter_envelope
from dspyops.settings import Settings
from tests.support.kafka import temporary_topic


@pytest.fixture
async def topic(bootstrap_servers: str, unique: str) -> AsyncIterator[str]:
    async with temporary_topic(bootstrap_servers, f"test.deadletter.{unique}", 2) as name:
        yield name


def letter(code: UndecodableCode, offset: int, quoted: bytes = b"\xff") -> bytes:
    error = Undecodable(code, "could not be read")
    envelope = deadletter_envelope(
        quoted, key=None, topic="dspyops.commands.x", partition=0, offset=offset, error=error
    )
    return encode(envelope)


async def send(bootstrap_servers: str, topic: str, records: list[tuple[int, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", max_request_size=1024 * 1024
    )
    await producer.start()
    try:
        for partition, value in records:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


async def test_counts_every_dead_letter_and_the_reasons_of_all(
    settings: Settings, bootstrap_servers: str, topic: str
) -> None:
    # Partition 0: 25 not_json then 5 not_envelope; partition 1: 3 not_json, 1 garbage.
    records = [(0, letter("not_json" if i < 25 else "not_envelope", i)) for i in range(30)]
    records += [(1, letter("not_json", i)) for i in range(3)] + [(1, b"not a dead letter")]
    await send(bootstrap_servers, topic, records)
    found = await dead_letters(bootstrap_servers, settings.kafka_security, topic)
    assert found is not None
    assert (found.total, found.read, found.complete) == (34, 34, True)
    assert found.reasons == Counter({"not_json": 28, "not_envelope": 5, "unreadable": 1})


async def test_each_load_reads_only_what_was_added_since_the_last(
    settings: Settings, bootstrap_servers: str, topic: str
) -> None:
    tally = Tally()
    await send(bootstrap_servers, topic, [(0, letter("not_json", i)) for i in range(4)])
    first = await dead_letters(bootstrap_servers, settings.kafka_security, topic, tally=tally)
    assert first is not None
    assert (first.total, first.read, first.reasons) == (4, 4, Counter({"not_json": 4}))
    # A mark in the tally: a load that read partition 0 again from its start would lose it.
    tally.partitions[0].reasons["mark"] += 1
    await send(bootstrap_servers, topic, [(0, letter("not_envelope", 4)), (1, b"?")])
    second = await dead_letters(bootstrap_servers, settings.kafka_security, topic, tally=tally)
    assert second is not None
    assert (second.total, second.read, second.complete) == (6, 6, True)
    assert second.reasons == Counter({"not_json": 4, "not_envelope": 1, "unreadable": 1, "mark": 1})
    assert {p: c.position for p, c in tally.partitions.items()} == {0: 5, 1: 1}


async def test_a_budget_that_ends_first_says_how_many_of_how_many(
    settings: Settings, bootstrap_servers: str, topic: str
) -> None:
    # 60 dead letters quoting 48 KiB each (about 64 KiB in base64): several fetches.
    big = b"\xfe" * (48 * 1024)
    await send(bootstrap_servers, topic, [(0, letter("not_json", i, big)) for i in range(60)])
    tally = Tally()
    nothing = await dead_letters(
        bootstrap_servers, settings.kafka_security, topic, tally=tally, budget_s=0
    )
    assert nothing is not None
    assert (nothing.total, nothing.read, nothing.complete) == (60, 0, False)
    seen = []
    last = None
    for _ in range(60):
        # A budget of 10 ms: one fetch per load, each counting on from the last.
        found = await dead_letters(
            bootstrap_servers, settings.kafka_security, topic, tally=tally, budget_s=0.01
        )
        assert found is not None
        seen.append(found.read)
        last = found
        if found.complete:
            break
    assert last is not None
    assert seen[-1] == 60
    assert last.reasons == Counter({"not_json": 60})
    # Counted over several loads, each on from the last.
    assert len(seen) > 1
    assert 0 < seen[0] < 60
    assert seen == sorted(seen)


async def test_records_retention_dropped_are_no_longer_counted(
    settings: Settings, bootstrap_servers: str, topic: str
) -> None:
    records = [(0, letter("not_json" if i < 4 else "not_envelope", i)) for i in range(10)]
    await send(bootstrap_servers, topic, records)
    tally = Tally()
    before = await dead_letters(bootstrap_servers, settings.kafka_security, topic, tally=tally)
    assert before is not None
    assert before.reasons == Counter({"not_json": 4, "not_envelope": 6})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(4)})
    finally:
        await admin.close()
    after = await dead_letters(bootstrap_servers, settings.kafka_security, topic, tally=tally)
    assert after is not None
    assert (after.total, after.read, after.complete) == (6, 6, True)
    assert after.reasons == Counter({"not_envelope": 6})


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
