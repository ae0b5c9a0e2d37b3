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
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced

from dspyops.client.producers import durable_producer
from dspyops.client.security import PLAINTEXT, KafkaSecurity
from dspyops.consumers.relay import Lease, become_leader
from dspyops.consumers.result_outbox import ResultOutbox, StoredMessage
from dspyops.consumers.transient import is_transient
from dspyops.events.codec import Undecodable, encode
from dspyops.events.deadletter import deadletter_envelope
from dspyops.events.topics import Topics

log = logging.getLogger(__name__)

# How often published rows older than the retention are deleted.
PRUNE_EVERY_S = 60.0


@dataclass(frozen=True)
class RelayIdentity:
    """Names Kafka knows this store's results relay by, and where its refusals go."""

    transactional_id: str
    group_id: str
    position_partition: TopicPartition
    deadletter_topic: str

    @classmethod
    def of(cls, topic_prefix: str, schema: str, topics: Topics) -> RelayIdentity:
        return cls(
            transactional_id=f"{topic_prefix}results-relay.{schema}",
            group_id=f"{topic_prefix}results-relay.{schema}",
            position_partition=TopicPartition(topics.results, 0),
            deadletter_topic=topics.deadletter,
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
        await become_leader(self._lease.try_take)
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
        """Publishes the next batch in one transaction; returns how many it published.

        A batch Kafka refuses for good (not an outage) goes again one row at a time, and
        the row refused alone goes to the dead-letter topic instead: one bad result must
        not stop every other (each worker taking over the relay would meet it again)."""
        rows = await asyncio.to_thread(self._outbox.after, self.position, self._batch_size)
        if not rows:
            return 0
        try:
            await self._publish(producer, rows)
        except KafkaError as exc:
            if is_transient(exc) or isinstance(exc, ProducerFenced):
                raise
            for row in rows:
                try:
                    await self._publish(producer, [row])
                except KafkaError as refused:
                    if is_transient(refused) or isinstance(refused, ProducerFenced):
                        raise
                    log.error("results relay: Kafka refused %s for good: %s", row.id, refused)
                    await self._publish(producer, [self._dead_letter(row, refused)])
        self.position = rows[-1].position
        return len(rows)

    def _dead_letter(self, row: StoredMessage, exc: KafkaError) -> StoredMessage:
        envelope = deadletter_envelope(
            row.value,
            key=row.key,
            topic=row.topic,
            partition=0,
            offset=row.position,
            error=Undecodable("unpublishable", f"{type(exc).__name__}: {exc}"[:500]),
        )
        return StoredMessage(
            position=row.position,
            id=envelope.id,
            topic=self._identity.deadletter_topic,
            key=row.key,
            value=encode(envelope),
            headers=[],
        )

    async def _publish(self, producer: AIOKafkaProducer, rows: list[StoredMessage]) -> None:
        """`rows` and the position after the last of them, in one transaction."""
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
            # Abort what can be aborted; an outage starts the run loop over from Kafka's
            # position.
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            raise
