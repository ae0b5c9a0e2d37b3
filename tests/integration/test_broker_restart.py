"""`dspyops infra down` / `infra up` on a broker of its own: data survives a restart."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dspyops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def own_broker(tmp_path: Path, database_url: str) -> Iterator[tuple[dict[str, str], str]]:
    port = _free_port()
    env = {
        **os.environ,
        "DSPYOPS_STATE_DIR": str(tmp_path / "stack"),
        "DSPYOPS_KAFKA_PORT": str(port),
        "DSPYOPS_KAFKA_CONTROLLER_PORT": str(_free_port()),
        # The shared server is used, so this stack starts a broker only.
        "DATABASE_URL": database_url,
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DSPYOPS_KAFKA_BOOTSTRAP_SERVERS", None)
    yield env, f"127.0.0.1:{port}"
    _dspyops(env, "infra", "down")


async def _produce(servers: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=b"k", value=b"kept across restarts")
    finally:
        await producer.stop()


async def _read_all(servers: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [r.value for records in batches.values() for r in records if r.value]
    finally:
        await consumer.stop()


def test_a_message_produced_before_a_broker_restart_is_readable_after(
    own_broker: tuple[dict[str, str], str],
) -> None:
    env, servers = own_broker
    started = _dspyops(env, "infra", "up", "--json")
    assert started.returncode == 0, started.stderr
    report = json.loads(started.stdout)
    assert report["kafka"]["bootstrap_servers"] == servers
    assert report["postgres"]["external"] is True

    asyncio.run(_produce(servers, "test.restart"))

    stopped = _dspyops(env, "infra", "down", "--json")
    assert json.loads(stopped.stdout)["kafka"] == {"stopped": True}
    status = _dspyops(env, "infra", "status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["kafka"]["running"] is False

    again = _dspyops(env, "infra", "up", "--json")
    assert again.returncode == 0, again.stderr
    assert asyncio.run(_read_all(servers, "test.restart")) == [b"kept across restarts"]
