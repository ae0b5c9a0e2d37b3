"""Creates dspyops' topics explicitly, all with one partition count, before workers start.

faust would otherwise create them implicitly, and a topic made elsewhere with another
partition count later crashes table agents with PartitionsMismatch.

Each topic is replicated to fit the cluster unless the settings say otherwise: on three
or more brokers, three replicas and `min.insync.replicas=2` (a write with `acks=all` is
on two brokers before it is acknowledged, and one broker can die without losing it or
stopping writes); on one broker, one replica.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dspyops.client.security import PLAINTEXT, KafkaSecurity
from dspyops.settings import Settings

# Kafka's error code for a topic that exists already (CreateTopics races another process).
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


class TopicLayoutError(RuntimeError):
    """Topics cannot be laid out as configured: an existing one has another partition
    count, or the cluster refused to create one (e.g. more replicas than brokers)."""


@dataclass(frozen=True)
class Replication:
    """Replicas per partition and `min.insync.replicas` of the topics dspyops creates;
    None: chosen from the cluster's size (`for_brokers`)."""

    factor: int | None = None
    min_insync: int | None = None

    def for_brokers(self, brokers: int) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) on a cluster of `brokers` brokers."""
        factor = self.factor or max(1, min(3, brokers))
        min_insync = self.min_insync or (2 if factor >= 3 else 1)
        if min_insync > factor:
            raise TopicLayoutError(
                f"min.insync.replicas {min_insync} is more than the replication factor "
                f"{factor}: no write could ever succeed; lower DSPYOPS_TOPIC_MIN_INSYNC_REPLICAS"
            )
        return factor, min_insync

    @classmethod
    def of(cls, settings: Settings) -> Replication:
        return cls(settings.topic_replication_factor, settings.topic_min_insync_replicas)


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication: Replication = Replication(),
    config: dict[str, str] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[str, int]:
    """Create missing topics; returns every topic's partition count. Idempotent.

    Existing topics keep their replication (Kafka changes it only by reassignment).

    On a cluster with ACLs, a principal that may not create topics finds them made by an
    administrator beforehand; it only needs to see them (DESCRIBE, which READ and WRITE
    imply)."""
    wanted = sorted(set(names))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security.aiokafka_kwargs())
    await admin.start()
    try:
        existing = await _partition_counts(admin, wanted)
        missing = [n for n in wanted if n not in existing]
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            factor, min_insync = replication.for_brokers(brokers)
            configs = {"min.insync.replicas": str(min_insync), **(config or {})}
            new = [
                NewTopic(
                    n,
                    num_partitions=partitions,
                    replication_factor=factor,
                    topic_configs=configs,
                )
                for n in missing
            ]
            # Another process may create them between our look and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(new)
                _raise_refusals(response.topic_errors, factor, brokers)
            existing = await _partition_counts(admin, wanted)
    finally:
        await admin.close()
    wrong = {n: c for n, c in existing.items() if c != partitions}
    if wrong:
        raise TopicLayoutError(
            f"topics exist with another partition count than {partitions}: {wrong}; "
            "set DSPYOPS_TOPIC_PARTITIONS to match, or recreate them"
        )
    return existing


def _raise_refusals(topic_errors: list[tuple[object, ...]], factor: int, brokers: int) -> None:
    """One line for the first topic the cluster would not create (other than one that
    another process created meanwhile)."""
    for name, code, *message in topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            detail = message[0] if message and message[0] else f"error code {code}"
            raise TopicLayoutError(
                f"Kafka refused to create topic {name} with {factor} replicas on "
                f"{brokers} broker(s): {detail}"
            )


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(names)
    counts: dict[str, int] = {}
    for topic in described:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts
