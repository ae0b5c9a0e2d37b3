"""`dspyops worker --processes 2` on the real stack: both children in the consumer group
answer, a child killed -9 is replaced and commands keep being answered, their metrics
add up on the parent's port, and SIGTERM to the parent stops every child in time."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
from aiokafka.partitioner import murmur2

from dspyops.api.worker_group import worker_group, worker_group_id
from dspyops.client import DspyopsClient
from dspyops.client.security import KafkaSecurity
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import started_client

PARTITIONS = 4
GRACE_S = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_program_per_partition() -> list[str]:
    """Program ids whose commands land on each partition of the programs topic once (the
    producer's murmur2 of the key), so every member of the group has to answer."""
    found: dict[int, str] = {}
    while len(found) < PARTITIONS:
        program_id = f"absent-{uuid.uuid4().hex[:12]}"
        found.setdefault((murmur2(program_id.encode()) & 0x7FFFFFFF) % PARTITIONS, program_id)
    return list(found.values())


async def _all_answered(client: DspyopsClient) -> None:
    """A TrainProgram per partition, each of a program that does not exist: rejected."""
    programs = _one_program_per_partition()
    envelopes = [client.envelope("TrainProgram", {"program_id": p}) for p in programs]
    requests = [client.request(e, timeout_s=60, check=False) for e in envelopes]
    replies = await asyncio.gather(*requests)
    assert {r.type for r in replies} == {"CommandRejected"}, replies


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _children(parent: WorkerProcess) -> list[int]:
    return [c.pid for c in psutil.Process(parent.pid).children() if c.status() != "zombie"]


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


async def _group_members(env: dict[str, str]) -> int:
    group = await worker_group(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        KafkaSecurity(),
        worker_group_id(env["DSPYOPS_TOPIC_PREFIX"]),
    )
    return len(group.members) if group is not None and group.state == "Stable" else -1


async def test_two_processes_share_the_group_survive_a_kill_and_stop_on_sigterm(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **env,
        "DSPYOPS_CONSUMER_SESSION_TIMEOUT_S": "6",  # the killed child's partitions move soon
        "DSPYOPS_WORKER_METRICS_PORT": str(port),
        "DSPYOPS_WORKER_STOP_GRACE_S": str(GRACE_S),
    }
    parent = WorkerProcess(env, tmp_path / "worker.log", ("--processes", "2", "--loglevel", "warn"))
    with parent:
        _wait(lambda: len(_children(parent)) == 2, "two children")
        async with started_client(env, "test-processes") as client:
            await _all_answered(client)
            deadline = time.monotonic() + 60
            while await _group_members(env) != 2:
                assert time.monotonic() < deadline, "2 members in the group"
                await asyncio.sleep(0.5)

            killed, survivor = _children(parent)
            os.kill(killed, signal.SIGKILL)
            _wait(lambda: len(set(_children(parent)) - {killed, survivor}) == 1, "a new child")
            assert survivor in _children(parent)
            await _all_answered(client)

        text = await asyncio.to_thread(_scrape, port)
        rejected = 'dspyops_commands_total{command_type="TrainProgram",result="CommandRejected"}'
        (line,) = [line for line in text.splitlines() if line.startswith(rejected)]
        # Both children's counts, the killed one's included (a redelivery may add some).
        assert float(line.split()[-1]) >= 2 * PARTITIONS, text
        assert "dspyops_projector" not in text

        children = _children(parent)
        began = time.monotonic()
        os.kill(parent.pid, signal.SIGTERM)  # the parent alone: it must stop its children
        code = parent.wait(timeout_s=GRACE_S + 5)
        assert time.monotonic() - began < GRACE_S + 3
        assert code == 0, parent.log()
        assert not any(psutil.pid_exists(pid) for pid in children), parent.log()
    assert f"(pid {killed}) was killed by SIGKILL; restarting it in " in parent.log()
    assert "Clearing labels has not been implemented" not in parent.log()
    # The parent made the fresh event store's tables: no child crashed making them at once.
    assert "Traceback" not in parent.log()
