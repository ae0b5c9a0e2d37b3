"""dspyops on a three-broker cluster that loses a broker mid-stream (issue 17, section 3).

A cluster of the test's own (tests/support/kafka_cluster.py): three combined
broker+controller nodes. The worker creates its topics with three replicas and
`min.insync.replicas=2`; then, twice, a node is killed with SIGKILL while the worker runs
executions and commands keep coming: first a node that does not lead the controller
quorum, then the quorum leader. Each comes back. No command is lost: every one gets its
terminal result, the event store holds exactly one execution per command, and the worker
runs on without a restart. The figures are printed (run with `-s` to see them).

The drill runs when DSPYOPS_CLUSTER_DRILL=1 (docs/kafka-cluster.md), not in every
`./scripts/test`: it starts three more brokers and kills two of them, about 95 s of a
2-core machine, and on CI's machine it failed once for a reason its output did not keep
(the run then hung in teardown; tests/support/hang_watchdog.py now ends such a run).
Until it has run green there, a red drill must not stop every other change from landing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dspyops.aggregates.ids import execution_uuid
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands, topic_replication
from tests.support.kafka_cluster import ClusterNode, KafkaCluster, running_cluster
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import drop_schema, stack_env, stored_events

SIGNATURE = "question: str, context: str -> answer: str"
# Executions per kill: half sent before it, half while the node is down. The full
# drill is 5,000: CLUSTER_DRILL_EXECUTIONS=5000 (about four minutes more here).
PER_ROUND = int(os.environ.get("CLUSTER_DRILL_EXECUTIONS", "1000"))

pytestmark = pytest.mark.skipif(
    os.environ.get("DSPYOPS_CLUSTER_DRILL") != "1",
    reason="the three-broker drill runs with DSPYOPS_CLUSTER_DRILL=1 (docs/kafka-cluster.md)",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[KafkaCluster]:
    base = tmp_path_factory.mktemp("kafka-cluster")
    with running_cluster(base, home=settings.home, version=settings.kafka_version) as started:
        yield started


@pytest.fixture
def cluster_env(cluster: KafkaCluster, database_url: str, unique: str) -> Iterator[dict[str, str]]:
    env = {
        **stack_env(cluster.bootstrap_servers, database_url, unique),
        "DSPYOPS_WORKER_METRICS_PORT": "0",
    }
    yield env
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


class Arrivals:
    """Reads the results topic in the background and notes when each terminal execution
    result arrived, so a wait is measured even while the test sends or restarts."""

    def __init__(self, results: TopicReader) -> None:
        self._results = results
        self.seen: list[tuple[float, int]] = []
        self._task: asyncio.Task[object] | None = None

    @property
    def count(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def _note(self, messages: list[dict[str, Any]]) -> bool:
        count = sum(m["type"].endswith("ExecutionSucceeded") for m in messages)
        if count > self.count:
            self.seen.append((time.monotonic(), count))
        return False  # never done: read until stopped

    def start(self) -> None:
        self._task = asyncio.create_task(self._results.wait_for(self._note, timeout_s=3600))

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def reach(self, count: int, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count < count:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # the reader's error, if it stopped on one
            assert time.monotonic() < deadline, f"{self.count} of {count} results"
            await asyncio.sleep(0.05)

    def longest_gap_after(self, moment: float) -> float:
        """The longest wait for a new result from `moment` on: how long the worker stopped
        answering while the cluster recovered."""
        times = [moment, *(t for t, _ in self.seen if t > moment)]
        return max(b - a for a, b in itertools.pairwise(times))


async def test_the_worker_loses_nothing_when_a_broker_and_then_the_quorum_leader_are_killed(
    cluster: KafkaCluster, cluster_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    env, bootstrap = cluster_env, cluster.bootstrap_servers
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    unique = topics.prefix.strip(".")
    register = command(
        "RegisterProgram", {"program_id": f"qa-{unique}", "name": "qa", "signature": SIGNATURE}
    )
    executions: list[Envelope] = []
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        async with TopicReader(bootstrap, topics.results) as results:
            await send_commands(bootstrap, topics, [register])
            await results.results_for([register.id], timeout_s=120)
            # The worker made its topics as the cluster's size asks: 3 replicas, 2 in sync.
            for topic in topics.all:
                assert await topic_replication(bootstrap, topic) == ({3}, "2"), topic
            arrivals = Arrivals(results)
            arrivals.start()
            for victim in (_not_the_leader(cluster), cluster.quorum_leader()):
                batch = [_execute(unique, len(executions) + n) for n in range(PER_ROUND)]
                executions += batch
                print(await _kill_during(cluster, victim, batch, arrivals, bootstrap, topics))
                assert worker.alive(), worker.log()[-3000:]
            await arrivals.stop()
            found = await results.results_for([e.id for e in executions], timeout_s=600)
    finally:
        worker.stop()
    for command_id, replies in found.items():
        assert len({r["id"] for r in replies}) == 1, (command_id, replies)
        assert all(r["type"].endswith("ExecutionSucceeded") for r in replies), replies
    events = stored_events(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])
    per_execution = Counter(oid for (oid, _v, t) in events if "Execution" in t)
    assert set(per_execution) == {str(execution_uuid(e.id)) for e in executions}
    assert set(per_execution.values()) == {2}  # requested + succeeded, once each
    again = sum(len(r) - 1 for r in found.values())
    print(
        f"cluster drill: {len(executions)} commands, {len(found)} with a terminal result, "
        f"{len(per_execution)} executions stored once each, {again} results delivered again; "
        f"{time.monotonic() - began:.0f}s"
    )


async def _kill_during(
    cluster: KafkaCluster,
    victim: ClusterNode,
    batch: list[Envelope],
    arrivals: Arrivals,
    bootstrap: str,
    topics: Topics,
) -> str:
    """Half of `batch` sent, `victim` killed once results flow, the other half sent while
    it is down, then it is started again; the figures of the round, in one line."""
    done_before, half = arrivals.count, len(batch) // 2
    await send_commands(bootstrap, topics, batch[:half])
    await arrivals.reach(done_before + half // 4, timeout_s=120)
    leader = cluster.quorum_leader() is victim
    killed_at, killed_after = time.monotonic(), arrivals.count - done_before
    victim.kill()
    await send_commands(bootstrap, topics, batch[half:])
    await arrivals.reach(done_before + half, timeout_s=600)
    restart_s = await asyncio.to_thread(cluster.restart, victim)
    await arrivals.reach(done_before + len(batch), timeout_s=600)
    in_sync_s = await _wait_fully_replicated(bootstrap, topics)
    # The controller fences a silent broker after broker.session.timeout.ms (9 s) and
    # moves its leaderships; measured 9-11 s here. Twice the worker's session timeout
    # leaves room for a loaded machine, not for a worker that waits for the broker's return.
    gap = arrivals.longest_gap_after(killed_at)
    assert gap < 20, f"no result for {gap:.1f}s after node {victim.node_id} was killed"
    return (
        f"killed node {victim.node_id} ({'quorum leader' if leader else 'not the leader'}) "
        f"after {killed_after} of {len(batch)} results: longest wait for a result "
        f"{gap:.1f}s; the node answered {restart_s:.1f}s "
        f"after its restart, every partition had 3 in-sync replicas {in_sync_s:.1f}s later"
    )


def _not_the_leader(cluster: KafkaCluster) -> ClusterNode:
    leader = cluster.quorum_leader()
    return next(n for n in cluster.nodes if n is not leader)


def _execute(unique: str, n: int) -> Envelope:
    inputs = {"question": f"question {n}", "context": "ctx"}
    return command("ExecuteProgram", {"program_id": f"qa-{unique}", "inputs": inputs})


async def _wait_fully_replicated(bootstrap: str, topics: Topics, timeout_s: float = 120) -> float:
    """Seconds until every partition of dspyops' topics has its 3 replicas in sync again."""
    began = time.monotonic()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            described = await admin.describe_topics(list(topics.all))
            short = [
                (t["topic"], p["partition"])
                for t in described
                for p in t["partitions"]
                if len(p["isr"]) < 3
            ]
            if not short:
                return time.monotonic() - began
            assert time.monotonic() - began < timeout_s, f"not back in sync: {short}"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
