"""The results outbox and its transactional relay, on the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from aiokafka.errors import ProducerFenced

from dspyops.client.producers import durable_producer
from dspyops.consumers.records import Outgoing
from dspyops.consumers.relay import Lease, relay_lock_key
from dspyops.consumers.result_outbox import ResultOutbox
from dspyops.consumers.result_relay import RelayIdentity, ResultRelay
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.consumers.worker import results_relay_for
from dspyops.events.envelope import command_envelope, result_envelope
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.kafka import TopicReader
from tests.support.worker_stack import settings_for


def _results(n: int, start: int = 0) -> list[Outgoing]:
    out = []
    for i in range(start, start + n):
        cmd = command_envelope("ExecuteProgram", {"program_id": "p"}, id=f"cmd-{i}")
        out.append(
            Outgoing("unused", f"corr-{i}", result_envelope(cmd, "Done", {"n": i}, subject="p"))
        )
    return out


@contextlib.asynccontextmanager
async def _running(relay: ResultRelay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _topics_of(settings: Settings) -> Topics:
    """The test's topics, created (four partitions each)."""
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.bootstrap_servers, topics.all, partitions=4)
    return topics


async def test_each_result_is_published_once_across_relays_and_a_zombie_is_fenced(
    env: dict[str, str], database_url: str
) -> None:
    settings = settings_for(env)
    topics = await _topics_of(settings)
    schema = settings.event_store_schema
    outbox = ResultOutbox.connect(database_url, schema, max_size=2)
    identity = RelayIdentity.of(settings.topic_prefix, schema, topics)

    def relay() -> ResultRelay:
        return ResultRelay(
            outbox,
            Lease(database_url, relay_lock_key(schema, "results")),
            identity,
            bootstrap_servers=settings.bootstrap_servers,
            batch_size=7,
            poll_interval_s=0.02,
            retention=timedelta(0),
        )

    def on_results(messages: list[Outgoing]) -> list[Outgoing]:
        return [Outgoing(topics.results, m.key, m.envelope) for m in messages]

    try:
        outbox.ensure_table()
        first = on_results(_results(20))
        assert outbox.put(first) == 20
        assert outbox.put(first[:5]) == 0  # a redelivered command's results: same ids
        async with TopicReader(
            settings.bootstrap_servers, topics.results, isolation_level="read_committed"
        ) as reader:
            async with _running(relay()):
                await reader.wait_for(lambda ms: len(ms) >= 20, timeout_s=60)
            # A relay that died mid-batch: its transaction is open, never committed.
            zombie = durable_producer(
                settings.bootstrap_servers, transactional_id=identity.transactional_id
            )
            await zombie.start()
            try:
                await zombie.begin_transaction()
                await zombie.send_and_wait(topics.results, b'{"id": "ghost"}', key=b"ghost")
                assert outbox.put(on_results(_results(10, start=20))) == 10
                async with _running(relay()):
                    await reader.wait_for(lambda ms: len(ms) >= 30, timeout_s=60)
                    with pytest.raises(ProducerFenced):
                        await zombie.commit_transaction()
                    await asyncio.sleep(1.0)  # room for anything published twice to show
            finally:
                with contextlib.suppress(Exception):
                    await zombie.stop()
            # Each once (the order holds per key, and the keys spread over partitions).
            ids = Counter(m["id"] for m in reader.messages)
            assert ids == Counter(m.envelope.id for m in _results(30))
            assert "ghost" not in ids
        # Published and older than the retention (0 here): the relay pruned them.
        assert outbox.after(0, 100) == []
    finally:
        outbox.close()


def test_messages_are_read_back_in_the_order_they_were_put(
    env: dict[str, str], database_url: str
) -> None:
    schema = settings_for(env).event_store_schema
    outbox = ResultOutbox.connect(database_url, schema, max_size=2)
    try:
        outbox.ensure_table()
        outbox.put(_results(3))
        outbox.put(_results(2, start=3))
        rows = outbox.after(0, 100)
        assert [r.id for r in rows] == [m.envelope.id for m in _results(5)]
        assert [r.id for r in outbox.after(rows[2].position, 100)] == [r.id for r in rows[3:]]
        assert rows[0].key == b"corr-0"
    finally:
        outbox.close()


def test_worker_processes_starting_together_create_the_table_once(
    env: dict[str, str], database_url: str
) -> None:
    schema = settings_for(env).event_store_schema
    outboxes = [ResultOutbox.connect(database_url, schema, max_size=1) for _ in range(6)]
    barrier = threading.Barrier(len(outboxes))

    def create(outbox: ResultOutbox) -> None:
        barrier.wait()
        outbox.ensure_table()

    try:
        with ThreadPoolExecutor(len(outboxes)) as pool:
            for done in [pool.submit(create, o) for o in outboxes]:
                done.result()  # raises a creation race's UniqueViolation, if any
        assert outboxes[0].put(_results(1)) == 1
    finally:
        for outbox in outboxes:
            outbox.close()


def test_a_reader_following_concurrent_writers_never_passes_a_row_committed_later(
    env: dict[str, str], database_url: str
) -> None:
    """The relay reads "after position N": a row that commits after a larger position was
    read would be skipped for good. Writers of many rows at once, side by side, and a
    reader doing what the relay does; every row stored must have been read."""
    schema = settings_for(env).event_store_schema
    writers, puts, per_put = 4, 25, 40
    outbox = ResultOutbox.connect(database_url, schema, max_size=writers + 1)
    done = threading.Event()
    seen: list[int] = []

    def write(w: int) -> None:
        for p in range(puts):
            start = (w * puts + p) * per_put
            outbox.put(_results(per_put, start=start))

    def follow() -> None:
        position = 0
        while True:
            finished = done.is_set()  # read before the last look: nothing comes after it
            rows = outbox.after(position, 10_000)
            if rows:
                seen.extend(r.position for r in rows)
                position = rows[-1].position
            elif finished:
                return

    try:
        outbox.ensure_table()
        with ThreadPoolExecutor(writers + 1) as pool:
            reader = pool.submit(follow)
            for written in [pool.submit(write, w) for w in range(writers)]:
                written.result()
            done.set()
            reader.result()
        stored = [r.position for r in outbox.after(0, 100_000)]
        assert len(stored) == writers * puts * per_put
        assert sorted(seen) == stored, f"{len(set(stored) - set(seen))} rows skipped"
    finally:
        outbox.close()


async def test_with_the_option_turned_off_a_worker_publishes_what_the_outbox_still_holds(
    env: dict[str, str], database_url: str
) -> None:
    settings = settings_for(env)  # DSPYOPS_RESULTS_EXACTLY_ONCE off, the default
    assert not settings.results_exactly_once
    topics = await _topics_of(settings)
    # Never on here: no outbox, no relay.
    assert results_relay_for(settings, topics, drain_only=True) is None
    outbox = ResultOutbox.connect(database_url, settings.event_store_schema, max_size=1)
    try:
        outbox.ensure_table()
        stored = [Outgoing(topics.results, m.key, m.envelope) for m in _results(12)]
        outbox.put(stored)  # stored while the option was on, not yet published
    finally:
        outbox.close()
    leftover = results_relay_for(settings, topics, drain_only=True)
    assert leftover is not None
    async with TopicReader(
        settings.bootstrap_servers, topics.results, isolation_level="read_committed"
    ) as reader:
        try:
            # It publishes them and ends: the worker's task finishes.
            await asyncio.wait_for(leftover.thread.run(), 60)
        finally:
            leftover.outbox.close()
        await reader.wait_for(lambda ms: len(ms) >= 12, timeout_s=30)
        await reader.drain(1.0)
    assert Counter(m["id"] for m in reader.messages) == Counter(m.envelope.id for m in stored)


async def test_a_result_kafka_refuses_for_good_becomes_a_dead_letter_and_the_rest_go_on(
    env: dict[str, str], database_url: str
) -> None:
    settings = settings_for(env)
    topics = await _topics_of(settings)
    schema = settings.event_store_schema
    fine = [Outgoing(topics.results, m.key, m.envelope) for m in _results(3)]
    huge = _results(1, start=3)[0]
    # Over the producer's 4 MB request limit: refused before it reaches the broker.
    huge = Outgoing(
        topics.results, huge.key, huge.envelope.model_copy(update={"data": {"x": "y" * 5_000_000}})
    )
    outbox = ResultOutbox.connect(database_url, schema, max_size=1)
    try:
        outbox.ensure_table()
        outbox.put([fine[0], huge, *fine[1:]])
        huge_position = outbox.after(0, 10)[1].position
        relay = ResultRelay(
            outbox,
            Lease(database_url, relay_lock_key(schema, "results")),
            RelayIdentity.of(settings.topic_prefix, schema, topics),
            bootstrap_servers=settings.bootstrap_servers,
            until_drained=True,
        )
        await asyncio.wait_for(relay.run(), 60)  # drained: it did not stop at the bad row
    finally:
        outbox.close()
    async with TopicReader(
        settings.bootstrap_servers, topics.results, isolation_level="read_committed"
    ) as results:
        await results.wait_for(lambda ms: len(ms) >= 3, timeout_s=30)
        await results.drain(1.0)
    assert sorted(m["id"] for m in results.messages) == sorted(m.envelope.id for m in fine)
    async with TopicReader(
        settings.bootstrap_servers, topics.deadletter, isolation_level="read_committed"
    ) as dead:
        (letter,) = await dead.wait_for(lambda ms: len(ms) >= 1, timeout_s=30)
    data = letter["data"]
    assert data["error"]["code"] == "unpublishable"
    assert "MessageSizeTooLarge" in data["error"]["message"]
    assert (data["topic"], data["offset"]) == (topics.results, huge_position)
    assert data["truncated"] is True
