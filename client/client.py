"""`DspyopsClient`: publish commands on Kafka and await their results by command id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from dspyops.client.errors import (
    CommandTimeoutError,
    KafkaRefusedError,
    TopicsMissingError,
    raise_for,
)
from dspyops.client.keys import record_key, subject_of
from dspyops.client.producers import durable_producer
from dspyops.client.refusals import AUTHORIZATION_ERRORS, access_refusal, first_refusal
from dspyops.client.replies import Reply, parse_reply
from dspyops.client.security import PLAINTEXT, KafkaSecurity
from dspyops.events.codec import Undecodable, decode_envelope, encode
from dspyops.events.commands import Command
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import DEFAULT_PREFIX, Topics, command_topic

log = logging.getLogger(__name__)

ProgressHandler = Callable[[Reply], None]
DEFAULT_TIMEOUT_S = 60.0
CLIENT_SOURCE = "urn:dspyops:client"


class _Pending:
    def __init__(self, command_type: str, on_progress: ProgressHandler | None) -> None:
        self.command_type = command_type
        self.on_progress = on_progress
        self.done: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()


class DspyopsClient:
    """An async client; use it as `async with DspyopsClient(servers) as client:`.

    `security` says how to reach a secured cluster (TLS, SASL); the default is plaintext.
    It reads the results topic from the moment it starts (positions are fixed before the
    first command goes out, so no answer is missed) and hands each result to the command
    that caused it (`causationid`) and to every matching subscription.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = DEFAULT_PREFIX,
        actor: str | None = None,
        source: str = CLIENT_SOURCE,
        connect_timeout_s: float = 10.0,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security
        self.topics = Topics(topic_prefix)
        self.actor = actor
        self.source = source
        self._connect_timeout_s = connect_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        # Why the results reader stopped, if it did: no command can be answered after that.
        self._failure: ConnectionError | None = None
        self._pending: dict[str, _Pending] = {}
        self._subscribers: list[tuple[Callable[[Reply], bool], asyncio.Queue[Reply]]] = []

    async def __aenter__(self) -> DspyopsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._connect(), self._connect_timeout_s)
        except TopicsMissingError:
            await self.close()
            raise
        except (TimeoutError, KafkaError, OSError) as exc:
            await self.close()
            refusal = await first_refusal(self.bootstrap_servers, self.security, exc)
            raise KafkaRefusedError(refusal) from exc

    async def _connect(self) -> None:
        self._producer = durable_producer(self.bootstrap_servers, self.security)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            # With exactly-once results (DSPYOPS_RESULTS_EXACTLY_ONCE) results come in
            # transactions: never one of an aborted batch, nor one before its commit.
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **self.security.aiokafka_kwargs(),
        )
        await self._consumer.start()
        partitions = await self._results_partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        # Resolving each position now pins "the end" to before our first command.
        for tp in partitions:
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read_results(), name="dspyops-results")

    async def _results_partitions(self) -> list[TopicPartition]:
        assert self._consumer is not None
        topic = self.topics.results
        # A worker creates the topics when it starts; give one that is starting a moment.
        deadline = time.monotonic() + min(5.0, self._connect_timeout_s / 2)
        while True:
            if topic in await self._consumer.topics():
                assert self._producer is not None
                found = await self._producer.partitions_for(topic)
                return [TopicPartition(topic, p) for p in sorted(found)]
            if time.monotonic() > deadline:
                who = self.security.principal
                raise TopicsMissingError(
                    f"topic {topic} does not exist on {self.bootstrap_servers}: "
                    "no worker has run with this topic prefix"
                    + (f" (or no ACL lets {who} read it)" if who else "")
                )
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            # A reader that failed has told every waiting command already.
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._reader
            self._reader = None
        for pending in self._pending.values():
            if not pending.done.done():
                pending.done.cancel()
        self._pending.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    # --- commands ------------------------------------------------------------------

    def envelope(
        self,
        command_type: str,
        data: dict[str, Any],
        *,
        id: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        return command_envelope(
            command_type,
            data,
            id=id,
            subject=subject_of(data),
            correlationid=correlation_id,
            actor=self.actor,
            source=self.source,
        )

    async def publish(self, envelope: Envelope) -> None:
        """Put one command on its topic and wait until Kafka has it; does not wait for a result."""
        if self._producer is None:
            raise RuntimeError("the client is not started (use `async with DspyopsClient(...)`)")
        topic = command_topic(self.topics, envelope.short_type, envelope.data)
        try:
            await self._producer.send_and_wait(
                topic, value=encode(envelope), key=record_key(envelope)
            )
        except AUTHORIZATION_ERRORS as exc:
            raise KafkaRefusedError(access_refusal(exc, self.security, "write to", topic)) from None

    async def send(
        self,
        command: Command,
        *,
        id: str | None = None,
        correlation_id: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_progress: ProgressHandler | None = None,
        check: bool = True,
    ) -> Reply:
        """Publish a command and return its terminal result.

        With `check`, `CommandRejected` raises `CommandRejectedError` and a failure result
        raises `CommandFailedError`; no answer within `timeout_s` raises
        `CommandTimeoutError`.
        """
        data = command.model_dump(mode="json", exclude_unset=True)
        envelope = self.envelope(type(command).__name__, data, id=id, correlation_id=correlation_id)
        return await self.request(
            envelope, timeout_s=timeout_s, on_progress=on_progress, check=check
        )

    async def request(
        self,
        envelope: Envelope,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_progress: ProgressHandler | None = None,
        check: bool = True,
    ) -> Reply:
        """Publish a ready-made command envelope and await its terminal result (see `send`)."""
        if self._failure is not None:
            raise self._failure
        pending = _Pending(envelope.short_type, on_progress)
        # Registered before publishing: the answer can come back before send returns.
        self._pending[envelope.id] = pending
        try:
            await self.publish(envelope)
            try:
                reply = await asyncio.wait_for(asyncio.shield(pending.done), timeout_s)
            except TimeoutError:
                raise CommandTimeoutError(envelope.id, timeout_s) from None
        finally:
            self._pending.pop(envelope.id, None)
        if check:
            raise_for(reply)
        return reply

    # --- subscriptions -------------------------------------------------------------

    async def results(
        self, *, program_id: str | None = None, include_progress: bool = True
    ) -> AsyncIterator[Reply]:
        """Every result from now on (optionally only one program's), as it arrives."""

        def wanted(reply: Reply) -> bool:
            if not include_progress and not reply.terminal:
                return False
            if program_id is None:
                return True
            return program_id in (reply.program_id, reply.envelope.subject)

        queue: asyncio.Queue[Reply] = asyncio.Queue()
        entry = (wanted, queue)
        self._subscribers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(entry)

    async def _read_results(self) -> None:
        assert self._consumer is not None
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._dispatch(record.value)
        except KafkaError as exc:
            # Nobody would answer the waiting commands now: tell them instead of timing out.
            results = self.topics.results
            failure: ConnectionError = (
                KafkaRefusedError(access_refusal(exc, self.security, "read", results))
                if isinstance(exc, AUTHORIZATION_ERRORS)
                else ConnectionError(f"reading {results} failed: {exc}")
            )
            self._failure = failure
            for pending in self._pending.values():
                if not pending.done.done():
                    pending.done.set_exception(failure)
            raise

    def _dispatch(self, raw: bytes | None) -> None:
        try:
            envelope = decode_envelope(raw, commands_only=False)
        except Undecodable:
            return  # not ours to judge; the results topic is written by dspyops only
        pending = self._pending.get(envelope.causationid or "")
        reply = parse_reply(envelope, pending.command_type if pending else "")
        if pending is not None and not pending.done.done():
            if reply.terminal:
                pending.done.set_result(reply)
            elif pending.on_progress is not None:
                try:
                    pending.on_progress(reply)
                except Exception:
                    # A caller's callback must not stop the reader every command relies on.
                    log.exception("on_progress callback failed for %s", reply.type)
        for wanted, queue in self._subscribers:
            if wanted(reply):
                queue.put_nowait(reply)
