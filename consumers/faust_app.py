"""The faust app: one agent per command topic, results and dead letters published durably.

An agent acknowledges a record only when it moves on to the next one, and it moves on
only after Kafka has acknowledged every message the record caused: offsets are committed
after results are durable, so a crash redelivers, and idempotent handling makes that safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types.auth import CredentialsT
from opentelemetry.trace import SpanKind

from dspyops.client.security import KafkaSecurity
from dspyops.consumers.records import Incoming, Outgoing
from dspyops.consumers.transient import is_transient
from dspyops.events.codec import encode
from dspyops.events.envelope import TRACEPARENT, TRACESTATE, Envelope
from dspyops.settings import Settings
from dspyops.tracing import Tracing

log = logging.getLogger(__name__)

Process = Callable[[Incoming], Awaitable[list[Outgoing]]]

_MAX_BACKOFF_S = 5.0


def broker_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """faust's form of `security`, made from the same aiokafka keywords every other client
    of ours uses (faust turns it back into them for its consumer and producer)."""
    kwargs = security.aiokafka_kwargs()
    if "sasl_mechanism" in kwargs:
        return faust.SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            mechanism=kwargs["sasl_mechanism"],
            ssl_context=kwargs.get("ssl_context"),
        )
    if "ssl_context" in kwargs:
        return faust.SSLCredentials(kwargs["ssl_context"])
    return None


class _DurableProducer(aiokafka_driver.Producer):
    """faust's aiokafka producer with idempotence on, as every producer of ours
    (client/producers.py): faust turns it on only in its exactly-once mode."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """faust's consumer thread, whose aiokafka consumer waits at most the transport's
    `fetch_max_wait_ms` for a fetch (faust hard-codes 1,500 ms).

    aiokafka leaves out of its next fetch the partitions whose records were fetched but
    not yet taken (after 100 ms of waiting, so as not to hold the others up), and sends
    no other fetch to that broker until this one returns. When every partition of the
    executions topic had records waiting, that fetch asked only for the idle topics
    (programs, optimizations) and came back empty after the full wait: commands kept
    arriving but were not fetched for up to 1.5 s (bench_pipeline at half of the peak
    rate: a p50 of over a second). A short wait bounds that stall; an idle worker then
    sends one empty fetch per wait.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # No faust setting; aiokafka keeps it here until start() builds its fetcher.
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class _Consumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _DurableTransport(aiokafka_driver.Transport):
    Producer = _DurableProducer
    Consumer = _Consumer
    fetch_max_wait_ms: int = 1500


def create_app(settings: Settings, *, app_id: str | None = None) -> faust.App:
    app = _new_app(settings, app_id=app_id)
    # The consumer transport also makes `app.producer`; set before anything uses it.
    transport = _DurableTransport(app.conf.broker_consumer, app)
    transport.fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
    app.transport = transport
    return app


def _new_app(settings: Settings, *, app_id: str | None) -> faust.App:
    return faust.App(
        app_id or f"{settings.topic_prefix}worker",
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=broker_credentials(settings.kafka_security),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,  # topics are created up front, with one partition count
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        producer_acks=-1,
        producer_max_request_size=4 * 1024 * 1024,
        consumer_max_fetch_size=4 * 1024 * 1024,
        broker_session_timeout=settings.consumer_session_timeout_s,
        broker_heartbeat_interval=settings.consumer_session_timeout_s / 4,
    )


Deliver = Callable[[Sequence[Outgoing]], Awaitable[None]]


class Publisher:
    """Sends envelopes and waits until Kafka has them all, or, with exactly-once results
    (`deliver`: consumers.result_outbox.OutboxDelivery), until the outbox has them.

    With tracing on, sending a command's results is a `publish` span under the command's
    own (the trace context its results carry); dead letters, which carry none, are not.
    """

    def __init__(
        self, app: faust.App, tracing: Tracing | None = None, deliver: Deliver | None = None
    ) -> None:
        self._app = app
        self._tracing = tracing or Tracing()
        self._topics: dict[str, faust.TopicT] = {}
        self._deliver: Deliver = deliver or self.send

    def _topic(self, name: str) -> faust.TopicT:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._app.topic(name, key_serializer="raw", value_serializer="raw")
            self._topics[name] = topic
        return topic

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        traceparent = _traceparent(messages[0].envelope) if messages else None
        if traceparent is None or not self._tracing.enabled:
            await self._deliver(messages)
            return
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": messages[0].topic,
            "messaging.batch.message_count": len(messages),
        }
        tracestate = (messages[0].envelope.model_extra or {}).get(TRACESTATE)
        with self._tracing.continue_trace(
            traceparent, "publish", SpanKind.PRODUCER, attributes, tracestate
        ):
            await self._deliver(messages)

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Sends as they are, with no span: the outbox relay's batches mix the events of
        many commands, each carrying its own command's trace context."""
        pending = []
        for message in messages:
            pending.append(await self._send(message.topic, message.key, message.envelope))
        await asyncio.gather(*pending)

    async def _send(self, topic: str, key: str | None, envelope: Envelope) -> Awaitable[Any]:
        # force=True: send now rather than attached to the current event (faust's
        # default), so we can wait for the broker's acknowledgement ourselves.
        # The trace context as headers too, for consumers that read only headers.
        headers = {
            name: value.encode()
            for name in (TRACEPARENT, TRACESTATE)
            if isinstance(value := (envelope.model_extra or {}).get(name), str)
        }
        return await self._topic(topic).send(
            key=key.encode() if key is not None else None,
            value=encode(envelope),
            headers=headers or None,
            force=True,
        )


async def handle_record(record: Incoming, process: Process, publisher: Publisher) -> None:
    """Processes one record until its messages are durable, waiting out outages."""
    backoff = 0.1
    while True:
        try:
            outgoing = await process(record)
            await publisher.publish(outgoing)
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "transient failure on %s[%d]@%d, retrying in %.1fs: %s",
                record.topic,
                record.partition,
                record.offset,
                backoff,
                exc,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)


def add_command_agent(
    app: faust.App,
    topic_name: str,
    process: Process,
    publisher: Publisher,
    *,
    concurrency: int,
) -> None:
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")

    async def agent(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            record = Incoming(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                traceparent=_header(message.headers, TRACEPARENT),
                tracestate=_header(message.headers, TRACESTATE),
            )
            await handle_record(record, process, publisher)

    app.agent(topic, name=f"{topic_name}-agent", concurrency=concurrency)(agent)


def _traceparent(envelope: Envelope) -> str | None:
    value = (envelope.model_extra or {}).get(TRACEPARENT)
    return value if isinstance(value, str) else None


def _header(headers: Any, name: str) -> str | None:
    """A record header as text; faust gives headers as a list of pairs or a mapping."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for key, value in pairs:
        if key == name and isinstance(value, bytes | bytearray):
            text = bytes(value).decode("ascii", "replace")
            return text or None
    return None
