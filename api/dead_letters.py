"""Dead letters as the health page shows them: how many the dead-letter topic holds, and
the reasons of the newest few.

The worker counts dead letters by reason (`dspyops_dead_letters_total{reason}`) on its own
metrics port, which the API does not see; the topic itself is the API's source. Counting
is two offset requests (end minus beginning of each partition, what retention kept);
the reasons need the records, so only the newest `NEWEST` per partition are read (a dead
letter quotes up to 64 KiB of what could not be read: reading them all on every page
load would be heavy). Bounded by `timeout_s` whatever the broker does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition

from dspyops.client.security import KafkaSecurity

NEWEST = 20


@dataclass
class DeadLetters:
    # Dead letters in the topic (what retention kept).
    total: int = 0
    # How many of the newest were read, and their reasons (the error code) by count.
    read: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def reason_of(value: bytes | None) -> str:
    """The error code of a dead letter's envelope (`data.error.code`), or `unreadable`."""
    try:
        code = json.loads(value or b"")["data"]["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unreadable"
    return code if isinstance(code, str) else "unreadable"


async def dead_letters(
    bootstrap_servers: str, security: KafkaSecurity, topic: str, timeout_s: float = 2.0
) -> DeadLetters | None:
    """The topic's dead letters; None when Kafka did not answer (or refused) in time."""
    options = {
        "bootstrap_servers": bootstrap_servers,
        "request_timeout_ms": int(timeout_s * 1000),
        **security.aiokafka_kwargs(),
    }
    client = AIOKafkaClient(**options)
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)
    try:
        return await asyncio.wait_for(_read(client, consumer, topic, timeout_s * 0.75), timeout_s)
    except Exception:
        # Like the Kafka check: unreachable, refused or slow all mean "unknown" here.
        return None
    finally:
        await consumer.stop()
        await client.close()


async def _read(
    client: AIOKafkaClient, consumer: AIOKafkaConsumer, topic: str, budget_s: float
) -> DeadLetters:
    deadline = time.monotonic() + budget_s
    found = DeadLetters()
    # Every topic's metadata: asking for this one by name could make a broker create it.
    await client.bootstrap()
    cluster = await client.fetch_all_metadata()
    parts = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
    if not parts:
        return found
    await consumer.start()
    begin = await consumer.beginning_offsets(parts)
    end = await consumer.end_offsets(parts)
    found.total = sum(end[tp] - begin[tp] for tp in parts)
    wanted = {tp: end[tp] for tp in parts if end[tp] > begin[tp]}
    if not wanted:
        return found
    consumer.assign(list(wanted))
    for tp in wanted:
        consumer.seek(tp, max(begin[tp], end[tp] - NEWEST))
    # Until each partition's position reaches its end (past any transaction markers), or
    # the time is up: the total stands, the reasons are of what was read.
    while wanted and time.monotonic() < deadline:
        batches = await consumer.getmany(*wanted, timeout_ms=200)
        for tp, records in batches.items():
            for record in records:
                if record.offset < wanted[tp]:
                    found.read += 1
                    found.reasons[reason_of(record.value)] += 1
        for tp in list(wanted):
            if await consumer.position(tp) >= wanted[tp]:
                del wanted[tp]
    return found
