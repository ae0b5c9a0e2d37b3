"""Dead letters as the health page shows them: how many the dead-letter topic holds, and
all their reasons, counted incrementally.

The worker counts dead letters by reason (`dspyops_dead_letters_total{reason}`) on its own
metrics port, which the API does not see; the topic itself is the API's source. Counting
them is two offset requests (end minus beginning of each partition, what retention kept).
Their reasons need the records, and a dead letter quotes up to 64 KiB of what could not
be read: reading them all on every page load would be heavy. So the API process keeps a
tally (`Tally`): per partition, the offsets it has read and their reasons by count. Each
load reads only the records added since the one before, for at most `budget_s`; when the
budget ends first, the page says how many of how many were counted, and the next load
goes on from there. When retention has dropped records the tally had counted, that
partition is counted again from its new beginning: the tally is always of what the topic
holds. Bounded by `timeout_s` whatever the broker does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition

from dspyops.client.security import KafkaSecurity


@dataclass
class Counted:
    """One partition's records read so far: offsets `start` up to `position` (excluded)."""

    start: int
    position: int
    read: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class Tally:
    """What one API process has counted of one dead-letter topic, kept between loads."""

    partitions: dict[int, Counted] = field(default_factory=dict)
    # One load reads at a time; another waits for it (within its own timeout).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Tallies(dict[str, Tally]):
    """The tallies of an API process, by topic (app.state; api/ui/console.py)."""

    def of(self, topic: str) -> Tally:
        return self.setdefault(topic, Tally())


@dataclass
class DeadLetters:
    # Dead letters in the topic (what retention kept).
    total: int = 0
    # How many of them were counted, and their reasons (the error code) by count.
    read: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Whether every partition was read to its end: then `reasons` are of them all.
    complete: bool = True


def reason_of(value: bytes | None) -> str:
    """The error code of a dead letter's envelope (`data.error.code`), or `unreadable`."""
    try:
        code = json.loads(value or b"")["data"]["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unreadable"
    return code if isinstance(code, str) else "unreadable"


async def dead_letters(
    bootstrap_servers: str,
    security: KafkaSecurity,
    topic: str,
    timeout_s: float = 2.0,
    tally: Tally | None = None,
    budget_s: float | None = None,
) -> DeadLetters | None:
    """The topic's dead letters, counting on from `tally` (a fresh one if None) for up to
    `budget_s` (default: three quarters of `timeout_s`); None when Kafka did not answer
    (or refused) in time."""
    tally = tally if tally is not None else Tally()
    options = {
        "bootstrap_servers": bootstrap_servers,
        "request_timeout_ms": int(timeout_s * 1000),
        **security.aiokafka_kwargs(),
    }
    client = AIOKafkaClient(**options)
    # read_committed: with exactly-once results dead letters come in transactions too;
    # one of an aborted batch was never a dead letter.
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, isolation_level="read_committed", **options
    )
    # Reading ends `budget_s` after it starts, and in any case in time to answer.
    latest = time.monotonic() + timeout_s * 0.75
    budget = _Budget(timeout_s * 0.75 if budget_s is None else budget_s, latest)
    try:
        return await asyncio.wait_for(_count(client, consumer, topic, tally, budget), timeout_s)
    except Exception:
        # Like the Kafka check: unreachable, refused or slow all mean "unknown" here. What
        # was counted before the failure stays counted (each record is tallied whole).
        return None
    finally:
        await consumer.stop()
        await client.close()


@dataclass(frozen=True)
class _Budget:
    seconds: float
    # The monotonic time reading must end by, whenever it starts.
    latest: float

    def deadline(self) -> float:
        return min(time.monotonic() + self.seconds, self.latest)


async def _count(
    client: AIOKafkaClient,
    consumer: AIOKafkaConsumer,
    topic: str,
    tally: Tally,
    budget: _Budget,
) -> DeadLetters:
    # Every topic's metadata: asking for this one by name could make a broker create it.
    await client.bootstrap()
    cluster = await client.fetch_all_metadata()
    parts = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
    if not parts:
        return DeadLetters()
    await consumer.start()
    begin = await consumer.beginning_offsets(parts)
    end = await consumer.end_offsets(parts)
    async with tally.lock:
        wanted: dict[TopicPartition, int] = {}
        for tp in parts:
            counted = tally.partitions.get(tp.partition)
            if counted is None or counted.start < begin[tp] or counted.position > end[tp]:
                # New, or retention dropped records it had counted (or the topic was made
                # again): count this partition from its beginning.
                counted = tally.partitions[tp.partition] = Counted(begin[tp], begin[tp])
            if counted.position < end[tp]:
                wanted[tp] = end[tp]
        if wanted:
            consumer.assign(list(wanted))
            for tp in wanted:
                consumer.seek(tp, tally.partitions[tp.partition].position)
            await _read(consumer, tally, wanted, budget.deadline())
        found = DeadLetters(
            total=sum(end[tp] - begin[tp] for tp in parts),
            complete=all(tally.partitions[tp.partition].position >= end[tp] for tp in parts),
        )
        for tp in parts:
            counted = tally.partitions[tp.partition]
            found.read += counted.read
            found.reasons.update(counted.reasons)
    return found


async def _read(
    consumer: AIOKafkaConsumer, tally: Tally, wanted: dict[TopicPartition, int], deadline: float
) -> None:
    """Tally records until each partition reaches its end offset (as the request began),
    past any transaction markers, or the time is up."""
    while wanted and time.monotonic() < deadline:
        batches = await consumer.getmany(*wanted, timeout_ms=200)
        for tp, records in batches.items():
            counted = tally.partitions[tp.partition]
            for record in records:
                if record.offset < wanted[tp]:
                    counted.read += 1
                    counted.reasons[reason_of(record.value)] += 1
                    counted.position = record.offset + 1
        for tp in list(wanted):
            position = await consumer.position(tp)
            if position >= wanted[tp]:
                tally.partitions[tp.partition].position = wanted[tp]
                del wanted[tp]
