"""Creates dspyops' topics explicitly, all with one partition count, before workers start.

faust would otherwise create them implicitly, and a topic made elsewhere with another
partition count later crashes table agents with PartitionsMismatch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dspyops.client.security import PLAINTEXT, KafkaSecurity


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count other than the configured one."""


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    *,
    partitions: int,
    config: dict[str, str] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[str, int]:
    """Create missing topics; returns every topic's partition count. Idempotent.

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
            new = [
                NewTopic(
                    n,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=dict(config or {}),
                )
                for n in missing
            ]
            # Another process may create them between our look and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
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


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(names)
    counts: dict[str, int] = {}
    for topic in described:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts
