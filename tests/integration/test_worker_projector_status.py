"""The worker's and projector's status as /health and the console's health page show them:
a real consumer group described by the real broker (state, members, lag per topic), a
real projector's session and tracking row; unknown when Kafka does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from fastapi.testclient import TestClient
from psycopg import sql

from dspyops.aggregates.app import handle
from dspyops.api.main import create_app
from dspyops.api.worker_group import worker_group
from dspyops.bootstrap import open_store
from dspyops.client.security import KafkaSecurity
from dspyops.events.commands import RegisterProgram
from dspyops.projections.lag import projector_status, read_lag
from dspyops.projections.projector import Projector
from dspyops.settings import Settings
from tests.support.kafka import temporary_topic
from tests.support.read_story import ctx, schemas


@pytest.fixture
async def topic(bootstrap_servers: str, unique: str) -> AsyncIterator[str]:
    async with temporary_topic(bootstrap_servers, f"test.worker-group.{unique}", 2) as name:
        yield name


async def test_a_consuming_group_is_running_with_its_members_and_lag_per_topic(
    settings: Settings, bootstrap_servers: str, topic: str, unique: str
) -> None:
    group = f"test-group-{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for partition, n in ((0, 7), (1, 3)):
            for i in range(n):
                await producer.send_and_wait(topic, b"x%d" % i, partition=partition)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        client_id=f"worker-{unique}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        # Committed: 5 of 7 on partition 0, 1 of 3 on partition 1: 4 records of lag.
        await consumer.commit(
            {
                TopicPartition(topic, 0): OffsetAndMetadata(5, ""),
                TopicPartition(topic, 1): OffsetAndMetadata(1, ""),
            }
        )
        found = await worker_group(bootstrap_servers, settings.kafka_security, group)
        assert found is not None
        assert (found.state, found.status) == ("Stable", "running")
        assert [m.client_id for m in found.members] == [f"worker-{unique}"]
        assert found.members[0].host  # the address the broker saw it connect from
        assert [(t.topic, t.partitions, t.lag) for t in found.lags] == [(topic, 2, 4)]
        assert found.lag == 4
    finally:
        await consumer.stop()
    # The member left: the group still has its offsets, and no worker.
    left = await worker_group(bootstrap_servers, settings.kafka_security, group)
    assert left is not None
    assert (left.state, left.status, left.members) == ("Empty", "stopped", [])
    assert left.lag == 4


async def test_a_group_no_worker_ever_joined_is_stopped(
    settings: Settings, bootstrap_servers: str, unique: str
) -> None:
    found = await worker_group(bootstrap_servers, settings.kafka_security, f"none-{unique}")
    assert found is not None
    assert (found.state, found.status, found.members, found.lags) == ("Dead", "stopped", [], [])


async def test_a_broker_that_does_not_answer_is_unknown() -> None:
    assert await worker_group("127.0.0.1:1", KafkaSecurity(), "dspyops.worker", 1.0) is None


def test_health_shows_unknown_worker_when_kafka_does_not_answer(
    settings: Settings, database_url: str, unique: str
) -> None:
    es, rs = f"test_es_{unique}", f"test_rd_{unique}"
    with schemas(database_url, es, rs):
        gone = settings.model_copy(
            update={
                "kafka_bootstrap_servers": "127.0.0.1:1",
                "database_url": database_url,
                "event_store_schema": es,
                "read_model_schema": rs,
                "api_token": None,
            }
        )
        with TestClient(create_app(gone)) as client:
            body = client.get("/health").json()
            page = client.get("/ui/health").text
    assert body["kafka"] is False
    assert body["worker"]["status"] == "unknown"
    assert body["worker"]["state"] is None
    assert body["projector"]["status"] == "stopped"
    assert "Unknown: Kafka did not answer within 2 s" in page


def _age_tracking(database_url: str, rs: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.projection_tracking SET updated_at = now() - interval '1 minute'"
            ).format(sql.Identifier(rs))
        )


async def _status(database_url: str, es: str, rs: str) -> tuple[str, int]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        lag = await read_lag(conn, es, rs)
        found = await projector_status(conn, rs, lag)
    return found.status, found.connected


def test_projector_running_behind_and_stopped(
    settings: Settings, database_url: str, unique: str
) -> None:
    es, rs = f"test_es_{unique}", f"test_rd_{unique}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        try:
            register = RegisterProgram(program_id="p", name="P", signature="a: str -> b: str")
            handle(store, register, ctx())
            projector = Projector(database_url, event_store_schema=es, read_schema=rs)
            try:
                projector.catch_up()
                assert asyncio.run(_status(database_url, es, rs)) == ("running", 1)
                # Caught up stays running however long ago it last applied.
                _age_tracking(database_url, rs)
                assert asyncio.run(_status(database_url, es, rs)) == ("running", 1)
                # Events wait: running while it applied within 10 s, behind after.
                handle(
                    store,
                    RegisterProgram(program_id="q", name="Q", signature="a: str -> b: str"),
                    ctx(),
                )
                _age_tracking(database_url, rs)
                assert asyncio.run(_status(database_url, es, rs)) == ("behind", 1)
                with TestClient(
                    create_app(
                        settings.model_copy(
                            update={
                                "database_url": database_url,
                                "event_store_schema": es,
                                "read_model_schema": rs,
                                "api_token": None,
                            }
                        )
                    )
                ) as client:
                    body = client.get("/health").json()
                    page = client.get("/ui/health").text
                assert body["projector"]["status"] == "behind"
                assert body["projector"]["connected"] == 1
                assert body["worker"]["status"] in {"running", "rebalancing", "stopped"}
                assert "<dt>Status</dt><dd>behind</dd>" in page
                projector.catch_up()
                assert asyncio.run(_status(database_url, es, rs)) == ("running", 1)
            finally:
                projector.close()
            # No projector session for this read schema: stopped, whatever the lag.
            assert asyncio.run(_status(database_url, es, rs)) == ("stopped", 0)
        finally:
            store.close()
