"""A three-node KRaft cluster for tests, from the jars of the local broker.

Each node is broker and controller at once (combined mode), on free ports, in a folder of
its own under the test's temporary folder; the three share one cluster id and a static
quorum (`controller.quorum.voters`, formatted without `--standalone`). Kafka's internal
topics get three replicas and `min.insync.replicas=2`, as in production, so the cluster
keeps accepting `acks=all` writes and consumer-group commits with one node down.

A node can be killed (SIGKILL: no shutdown, as a crashed machine) and started again
from its data; `quorum_leader` says which node leads the controller quorum.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

from dspyops.cli.infra import processes
from dspyops.cli.infra.kafka import KafkaBroker, KafkaError, new_cluster_id
from tests.support.secure_kafka import free_port

NODES = 3


@dataclass(frozen=True)
class ClusterNode(KafkaBroker):
    node_id: int = 1
    # "1@127.0.0.1:port,2@...": every controller of the cluster, the same on each node.
    voters: str = ""

    def quorum_properties(self) -> list[str]:
        return [f"node.id={self.node_id}", f"controller.quorum.voters={self.voters}"]

    def quorum_format_options(self) -> list[str]:
        return []  # the static quorum above; no `--standalone`

    def replication_properties(self) -> list[str]:
        return [
            "offsets.topic.replication.factor=3",
            "transaction.state.log.replication.factor=3",
            "transaction.state.log.min.isr=2",
            "share.coordinator.state.topic.replication.factor=3",
            "share.coordinator.state.topic.min.isr=2",
            "default.replication.factor=3",
            "min.insync.replicas=2",
        ]

    def kill(self) -> None:
        """SIGKILL: the broker and its controller vanish mid-write, as in a crash."""
        pid = self.pid()
        assert pid is not None, f"node {self.node_id} is not running"
        os.kill(pid, signal.SIGKILL)
        while processes.is_running(pid):
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # reap it: the test process started it
        self.pid_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class KafkaCluster:
    nodes: tuple[ClusterNode, ...]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.bootstrap_servers for n in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self, *, timeout_s: float = 120.0) -> float:
        """Launch every node, then wait until each answers and all are brokers of the
        cluster; returns the seconds it took."""
        began = time.monotonic()
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready(timeout_s=max(1.0, timeout_s - (time.monotonic() - began)))
        self.wait_for_brokers(len(self.nodes), timeout_s=timeout_s)
        return time.monotonic() - began

    def restart(self, node: ClusterNode, *, timeout_s: float = 60.0) -> float:
        """Start a killed node again from its data; seconds until it answered."""
        return node.start(timeout_s=timeout_s)

    def stop(self) -> None:
        """Kill every running node: their data is a test's, and a graceful stop of the
        last nodes waits on a quorum that is gone."""
        for node in self.nodes:
            if node.pid() is not None:
                node.kill()

    def wait_for_brokers(self, count: int, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while (seen := self.brokers()) != count:
            if time.monotonic() > deadline:
                raise KafkaError(f"{seen} of {count} brokers registered after {timeout_s:.0f}s")
            time.sleep(0.5)

    def brokers(self) -> int:
        """Brokers the cluster's metadata lists (a killed one drops out once fenced)."""

        async def count() -> int:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000
            )
            try:
                await admin.start()
                return len((await admin.describe_cluster())["brokers"])
            except (KafkaConnectionError, NodeNotReadyError):
                return -1  # asked a node that just died; the caller asks again
            finally:
                await admin.close()

        return asyncio.run(count())

    def quorum_leader(self) -> ClusterNode:
        """The node leading the controller quorum, as a running node's quorum state says."""
        for node in self.nodes:
            if node.pid() is None:
                continue
            state = node.data_dir / "__cluster_metadata-0" / "quorum-state"
            leader = json.loads(state.read_text()).get("leaderId", -1)
            if leader > 0:
                return self.node(leader)
        raise KafkaError("no running node knows a quorum leader")


def make_cluster(base: Path, *, home: Path, version: str) -> KafkaCluster:
    """Three combined nodes on free ports under `base`, not started."""
    ports = [(free_port(), free_port()) for _ in range(NODES)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_p, c) in enumerate(ports))
    cluster_id = new_cluster_id()
    nodes = tuple(
        ClusterNode(
            version=version,
            home=home,
            state_dir=base / f"node{i + 1}",
            port=port,
            controller_port=controller_port,
            heap="384m",
            cluster_id=cluster_id,
            node_id=i + 1,
            voters=voters,
        )
        for i, (port, controller_port) in enumerate(ports)
    )
    return KafkaCluster(nodes)


@contextmanager
def running_cluster(base: Path, *, home: Path, version: str) -> Iterator[KafkaCluster]:
    """A started cluster, stopped (every node) however the block ends."""
    cluster = make_cluster(base, home=home, version=version)
    try:
        took = cluster.start()
        print(f"three-node KRaft cluster answered in {took:.1f}s")
        yield cluster
    finally:
        cluster.stop()
