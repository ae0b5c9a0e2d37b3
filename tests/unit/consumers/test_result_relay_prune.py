"""ResultRelay: prunes published rows even when never idle; closes what it started."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from dspyops.consumers import result_relay
from dspyops.consumers.relay import Lease
from dspyops.consumers.result_outbox import ResultOutbox, StoredMessage
from dspyops.consumers.result_relay import RelayIdentity, ResultRelay
from dspyops.events.topics import Topics


class _BusyOutbox:
    """Every look finds one more row: a worker under steady load."""

    def __init__(self) -> None:
        self.pruned: list[int] = []

    def after(self, position: int, limit: int) -> list[StoredMessage]:
        return [StoredMessage(position + 1, f"id-{position + 1}", "results", None, b"{}", [])]

    def prune(self, published_through: int, retention: timedelta) -> int:
        self.pruned.append(published_through)
        return 0


class _Producer:
    def __init__(self) -> None:
        self.committed = 0

    async def begin_transaction(self) -> None:
        pass

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent.set_result(None)
        return sent

    async def send_offsets_to_transaction(self, *args: Any) -> None:
        pass

    async def commit_transaction(self) -> None:
        self.committed += 1


async def test_a_relay_that_always_finds_rows_still_prunes_what_it_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(result_relay, "PRUNE_EVERY_S", 0.05)
    outbox = _BusyOutbox()
    relay = ResultRelay(
        cast(ResultOutbox, outbox),
        cast(Lease, None),
        RelayIdentity.of("t.", "s", Topics("t.")),
        bootstrap_servers="unused:9092",
    )
    producer = _Producer()
    running = asyncio.create_task(relay._relay(cast(AIOKafkaProducer, producer)))
    try:
        for _ in range(500):
            if outbox.pruned and producer.committed >= 10:
                break
            await asyncio.sleep(0.01)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert producer.committed >= 10  # never idle: each look published a row
    assert outbox.pruned, "never pruned while busy"
    assert 0 < outbox.pruned[0] <= relay.position


class _Lease:
    def try_take(self) -> bool:
        return True

    def release(self) -> None:
        pass


class _TableOutbox:
    def ensure_table(self) -> None:
        pass


class _FailingStart:
    def __init__(self) -> None:
        self.stopped = False

    async def start(self) -> None:
        raise KafkaConnectionError("the coordinator went away")

    async def stop(self) -> None:
        self.stopped = True


async def test_a_producer_whose_start_fails_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = _FailingStart()
    monkeypatch.setattr(result_relay, "durable_producer", lambda *a, **k: producer)
    relay = ResultRelay(
        cast(ResultOutbox, _TableOutbox()),
        cast(Lease, _Lease()),
        RelayIdentity.of("t.", "s", Topics("t.")),
        bootstrap_servers="unused:9092",
    )
    with pytest.raises(KafkaConnectionError):
        await relay._lead_and_relay()
    assert producer.stopped
