"""What the worker reads from and writes to Kafka, independent of the Kafka client."""

from __future__ import annotations

from dataclasses import dataclass

from dspyops.events.envelope import Envelope


@dataclass(frozen=True)
class Incoming:
    """One record from a command topic, as raw as it came."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    # The record's W3C `traceparent` and `tracestate` headers, if it had them
    # (consumers.telemetry).
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """One envelope to publish: the worker awaits its delivery before it moves on."""

    topic: str
    key: str | None
    envelope: Envelope
