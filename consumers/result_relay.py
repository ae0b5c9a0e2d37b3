"""The results relay: publishes the results outbox (`result_outbox`) in Kafka transactions,
so a `read_committed` consumer sees each result exactly once.

Each batch is one transaction that sends the batch's messages and commits the relay's
position as a consumer-group offset (`send_offsets_to_transaction`): the messages and the
position become visible together or not at all. The position is the outbox's row number,
kept as the offset of group `<prefix>results-relay` on partition 0 of the results topic
(Kafka does not check an offset against the log; tools that show that group's lag show
nonsense). A relay that dies mid-batch leaves an open transaction that the next one aborts.

One relay leads per event store (a PostgreSQL advisory lock, as the events relay). Its
producer's transactional id is fixed per store, so a relay that lost its lock but still
runs is fenced by Kafka the moment its successor starts (`ProducerFenced`), and its open
transaction is aborted before the successor reads the position.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced

from dspyops.client.producers import durable_producer
from dspyops.client.security import PLAINTEXT, KafkaSecurity
from dspyops.consumers.relay import Lease
from dspyops.consumers.result_outbox import ResultOutbox
from dspyops.consumers.transient import is_transient

log = logging.getLogger(__name__)

# How often published rows older than the retention are deleted.
PRUNE_EVERY_S = 60.0


@dataclass(frozen=True)
class RelayIdentity:
    """Names Kafka knows this store's results relay by."""

    transactional_id: str
    group_id: str
    position_partition: TopicPartition

    @classmethod
    def of(cls, topic_prefix: str, schema: str, results_topic: str) -> RelayIdentity:
        return cls(
            transactional_id=f"{topic_prefix}results-relay.{schema}",
            group_id=f"{topic_prefix}results-relay.{schema}",
            position_partition=TopicPartition(results_topic, 0),
        )


class ResultRelay:
    """Reads the outbox after the committed position; one Kafka transaction per batch."""

    def __init__(
        self,
        outbox: ResultOutbox,
        lease: Lease,
        identity: RelayIdentity,
        *,
        bootstrap_servers: str,
        security: KafkaSecurity = PLAINTEXT,
        batch_size: int = 500,
        poll_interval_s: float = 0.05,
        retention: timedelta = timedelta(days=1),
        until_drained: bool = False,
    ) -> None:
        self._outbox = outbox
        self._lease = lease
        self._identity = identity
        self._bootstrap = bootstrap_servers
        self._security = security
        self._batch_size = batch_size
        self._poll = poll_interval_s
        self._retention = retention
        # Ends once everything stored is published (the option was turned off).
        self._until_drained = until_drained
        self._wake = asyncio.Event()
        self._pruned_at = 0.0
        self.position = 0

    def wake(self) -> None:
        """New rows are stored: look now rather than at the next poll (same process only;
        a relay leading in another process finds them by polling)."""
        self._wake.set()

    async def run(self) -> None:
        """Relays until cancelled; an outage or a lost lead starts over from the position
        Kafka committed last."""
        try:
            while True:
                try:
                    await self._lead_and_relay()
                    return  # drained (only `until_drained` relays get here)
                except ProducerFenced:
                    log.warning("results relay fenced by another relay; waiting to lead again")
                    self._lease.release()
                    await asyncio.sleep(1.0)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("results relay interrupted, resuming in 1 s: %s", exc)
                    self._lease.release()
                    await asyncio.sleep(1.0)
        finally:
            self._lease.release()

    async def _lead_and_relay(self) -> None:
        await asyncio.to_thread(self._outbox.ensure_table)
        await self._become_leader()
        producer = durable_producer(
            self._bootstrap,
            self._security,
            transactional_id=self._identity.transactional_id,
        )
        try:
            # Inside: a start cancelled or failed after the client connected leaves it open.
            await producer.start()
            # An empty transaction first: it waits for the producer id, which fences any
            # older relay and completes its open transaction, so the position read next
            # is final.
            await producer.begin_transaction()
            await producer.commit_transaction()
            self.position = await self._committed_position()
            await self._relay(producer)
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _relay(self, producer: AIOKafkaProducer) -> None:
        led_at = time.monotonic()
        while True:
            if not await self.relay_once(producer):
                if self._until_drained:
                    return
                await self._idle()
            elif time.monotonic() - max(self._pruned_at, led_at) > PRUNE_EVERY_S:
                # Busy: under steady load every look finds rows, and pruning only when
                # idle would let the table grow until the first quiet moment.
                await self._prune()

    async def _become_leader(self) -> None:
        # Another worker's relay holds the lock: this one takes over when that one dies.
        for _ in itertools.count():
            if await asyncio.to_thread(self._lease.try_take):
                return
            await asyncio.sleep(1.0)

    async def _idle(self) -> None:
        # Cleared after the wait: a wake that came while the last batch was read ends
        # this wait at once, rather than being lost.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll)
        self._wake.clear()
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            await self._prune()

    async def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        await asyncio.to_thread(self._outbox.prune, self.position, self._retention)

    async def _committed_position(self) -> int:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap, **self._security.aiokafka_kwargs()
        )
        try:
            await admin.start()
            tp = self._identity.position_partition
            offsets = await admin.list_consumer_group_offsets(
                self._identity.group_id, partitions=[tp]
            )
        finally:
            await admin.close()
        found = offsets.get(tp)
        return max(found.offset, 0) if found is not None else 0

    async def relay_once(self, producer: AIOKafkaProducer) -> int:
        """Publishes the next batch in one transaction; returns how many it published."""
        rows = await asyncio.to_thread(self._outbox.after, self.position, self._batch_size)
        if not rows:
            return 0
        await producer.begin_transaction()
        try:
            sent = [
                await producer.send(row.topic, row.value, key=row.key, headers=row.headers)
                for row in rows
            ]
            await asyncio.gather(*sent)
            await producer.send_offsets_to_transaction(
                {self._identity.position_partition: rows[-1].position}, self._identity.group_id
            )
            await producer.commit_transaction()
        except KafkaError:
            # Abort what can be aborted; the run loop starts over from Kafka's position.
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            raise
        self.position = rows[-1].position
        return len(rows)


class RelayThread:
    """Runs a relay on an event loop of its own thread.

    Why: each transaction is several round trips to Kafka, and on the worker's loop each
    of them waited for whatever else was ready there (up to 200 executions' callbacks).
    Measured at 50 executions/s after a burst, transactions took 100 to 1,200 ms there
    instead of 6 to 40. On a thread of its own the relay gets the interpreter at least
    every switch interval (5 ms).
    """

    def __init__(self, relay: ResultRelay) -> None:
        self._relay = relay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="results-relay", daemon=True)

    async def run(self) -> None:
        """Starts the thread and returns when it ends: raises what ended the relay, and
        stops the thread when cancelled (the worker stopping)."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = (asyncio.get_running_loop(), ended)
        self._thread.start()
        try:
            await ended
        finally:
            await asyncio.to_thread(self.stop)

    def wake(self) -> None:
        """From any thread: new rows are stored."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing meanwhile
                self._loop.call_soon_threadsafe(self._relay.wake)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._ready.wait(timeout_s)
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        outcome: BaseException | None = None
        loop = asyncio.new_event_loop()
        try:
            self._loop = loop
            self._task = loop.create_task(self._relay.run())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the worker's loop, which raises it
            outcome = exc
        finally:
            self._ready.set()
            loop.close()
            caller, ended = self._ended
            if not caller.is_closed():
                with contextlib.suppress(RuntimeError):
                    caller.call_soon_threadsafe(_settle, ended, outcome)


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
