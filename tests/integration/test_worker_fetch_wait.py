"""The worker's consumer never holds a busy partition back for faust's 1.5 s fetch wait.

aiokafka leaves a partition whose fetched records are still untaken (for over 100 ms) out
of its next fetch, and sends that broker no other fetch until this one returns: with only
idle partitions in it, that fetch waits its full `fetch_max_wait_ms` while new records
pile up on the busy one. The worker's consumer (consumers/faust_app.py) waits
`consumer_fetch_max_wait_ms`; faust's own 1,500 ms is the control that shows the stall.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from dspyops.consumers.faust_app import create_app
from dspyops.settings import Settings
from tests.support.kafka import produce, temporary_topic

FAUST_WAIT_MS = 1500


async def _held_back_s(bootstrap_servers: str, unique: str, fetch_max_wait_ms: int) -> float:
    """Seconds until a record on the busy topic is fetched, produced right after the
    consumer took the records it had held for longer than aiokafka's 100 ms."""
    settings = Settings(
        kafka_bootstrap_servers=bootstrap_servers,
        topic_prefix=f"fetch{unique}.",
        consumer_fetch_max_wait_ms=fetch_max_wait_ms,
    )
    app = create_app(settings)
    busy, idle = f"fetch{unique}.busy{fetch_max_wait_ms}", f"fetch{unique}.idle{fetch_max_wait_ms}"
    async with (
        temporary_topic(bootstrap_servers, busy, 1),
        temporary_topic(bootstrap_servers, idle, 1),
    ):
        # The aiokafka consumer faust's consumer thread makes for a worker.
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        await consumer.start()
        try:
            busy_tp, idle_tp = TopicPartition(busy, 0), TopicPartition(idle, 0)
            consumer.assign([busy_tp, idle_tp])
            await consumer.seek_to_end(busy_tp, idle_tp)
            for tp in (busy_tp, idle_tp):
                await consumer.position(tp)
            await produce(bootstrap_servers, [(busy, None, b"first")])
            # Fetched but untaken for longer than 100 ms: the next fetch is the idle one's.
            await asyncio.sleep(0.5)
            first = await consumer.getmany(busy_tp, timeout_ms=5000)
            assert [r.value for r in first.get(busy_tp, [])] == [b"first"]
            began = time.monotonic()
            await produce(bootstrap_servers, [(busy, None, b"second")])
            second = await consumer.getmany(busy_tp, timeout_ms=5000)
            assert [r.value for r in second.get(busy_tp, [])] == [b"second"]
            return time.monotonic() - began
        finally:
            await consumer.stop()


async def test_a_busy_partition_waits_no_longer_than_the_workers_fetch_wait(
    bootstrap_servers: str, unique: str
) -> None:
    wait_ms = Settings().consumer_fetch_max_wait_ms
    assert wait_ms <= 100
    held = await _held_back_s(bootstrap_servers, unique, wait_ms)
    control = await _held_back_s(bootstrap_servers, unique, FAUST_WAIT_MS)
    # faust's wait: the record waits out most of the idle fetch (started about 0.1-0.3 s
    # after the first record was fetched); ours: a few dozen milliseconds.
    assert control > 0.7, f"no stall with faust's wait ({control:.3f} s): the test shows nothing"
    assert held < 0.5, f"held back {held:.3f} s with a {wait_ms} ms fetch wait"


@pytest.mark.parametrize("wait_ms", [0, 1501])
def test_the_fetch_wait_is_bounded(wait_ms: int) -> None:
    with pytest.raises(ValidationError, match="consumer_fetch_max_wait_ms"):
        Settings(consumer_fetch_max_wait_ms=wait_ms)
