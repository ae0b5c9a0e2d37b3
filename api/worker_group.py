"""The worker's status as Kafka sees it: its consumer group described by the broker.

The worker is a faust app whose consumer group is `<topic prefix>worker`
(consumers/faust_app.py). The broker's group coordinator knows the group's state
(`Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`), its members
(each one's client id and host) and the offsets it committed; the lag of each topic is
the end offsets minus those commits. Bounded by `timeout_s` whatever the broker does:
None means Kafka did not answer (or refused to describe the group), shown as unknown,
never as healthy.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from dspyops.client.security import KafkaSecurity

# The group's state -> the worker's status. Any other state (the broker's `Unknown`) is
# "unknown": a status is shown only when the broker said what it is.
STATUS_OF_STATE = {
    "Stable": "running",
    "PreparingRebalance": "rebalancing",
    "CompletingRebalance": "rebalancing",
    # No member: the group exists (offsets committed) but no worker is in it.
    "Empty": "stopped",
    # No such group, or it was deleted: no worker ever joined (or it left long ago).
    "Dead": "stopped",
}


@dataclass(frozen=True, order=True)
class Member:
    client_id: str
    host: str


@dataclass(frozen=True)
class TopicLag:
    topic: str
    # Partitions the group committed an offset on, and the records on them past the commit.
    partitions: int
    lag: int


@dataclass
class WorkerGroup:
    group: str
    state: str
    members: list[Member] = field(default_factory=list)
    lags: list[TopicLag] = field(default_factory=list)

    @property
    def status(self) -> str:
        return STATUS_OF_STATE.get(self.state, "unknown")

    @property
    def lag(self) -> int:
        return sum(t.lag for t in self.lags)


def worker_group_id(topic_prefix: str) -> str:
    """The faust app id, which is its consumer group (consumers/faust_app.py)."""
    return f"{topic_prefix}worker"


async def worker_group(
    bootstrap_servers: str, security: KafkaSecurity, group: str, timeout_s: float = 2.0
) -> WorkerGroup | None:
    """The group as its coordinator describes it, with its lag per topic; None when Kafka
    did not answer (or refused) within `timeout_s`."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "request_timeout_ms": int(timeout_s * 1000),
        **security.aiokafka_kwargs(),
    }
    admin = AIOKafkaAdminClient(**options)
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)
    try:
        return await asyncio.wait_for(_describe(admin, consumer, group), timeout_s)
    except Exception:
        # Like the Kafka check: unreachable, refused or slow all mean "unknown" here.
        return None
    finally:
        await consumer.stop()
        await admin.close()


async def _describe(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str
) -> WorkerGroup:
    await admin.start()
    described = None
    for response in await admin.describe_consumer_groups([group]):
        for g in response.to_object()["groups"]:
            if g["group"] == group:
                described = g
    if described is None or described["error_code"] != 0:
        raise LookupError(f"the broker did not describe group {group!r}: {described}")
    found = WorkerGroup(
        group=group,
        state=described["state"],
        members=sorted(
            Member(client_id=m["client_id"], host=m["client_host"].lstrip("/"))
            for m in described["members"]
        ),
    )
    committed = {
        tp: meta.offset
        for tp, meta in (await admin.list_consumer_group_offsets(group)).items()
        if meta.offset >= 0
    }
    if committed:
        await consumer.start()
        end = await consumer.end_offsets(list(committed))
        found.lags = _lags(committed, end)
    return found


def _lags(committed: dict[TopicPartition, int], end: dict[TopicPartition, int]) -> list[TopicLag]:
    by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
    for tp in committed:
        by_topic[tp.topic].append(tp)
    return [
        TopicLag(
            topic=topic,
            partitions=len(parts),
            lag=sum(max(end[tp] - committed[tp], 0) for tp in parts),
        )
        for topic, parts in sorted(by_topic.items())
    ]
