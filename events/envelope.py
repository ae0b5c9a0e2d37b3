"""The CloudEvents 1.0 envelope every dspyops message travels in (structured JSON mode)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, model_validator

COMMAND_TYPE_PREFIX = "dspyops.command."
RESULT_TYPE_PREFIX = "dspyops.result."
EVENT_TYPE_PREFIX = "dspyops.event."
DEFAULT_SOURCE = "urn:dspyops"
# The user-facing ids a message can be about, first found first: a command's or an
# event's subject, and (program, dataset, corpus) the key of commands on their topic.
SUBJECT_FIELDS = (
    "program_id",
    "dataset_id",
    "corpus_id",
    "execution_id",
    "optimization_id",
    "evaluation_id",
)

EnvelopeId = Annotated[str, Field(min_length=1, max_length=256)]

# RFC 3339 date-time, as CloudEvents requires: full date, time and offset ("Z" or ±hh:mm).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z")


def _rfc3339(value: Any) -> Any:
    """A time given as text must be RFC 3339; a number or a bare date is refused."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("time must be an RFC 3339 date-time string, e.g. 2026-01-31T12:00:00Z")
    # RFC 3339 allows "t"/"z" and a leap second (:60), Python's parser neither.
    text = value.upper()
    leap = text[17:19] == "60"
    if leap:
        text = text[:17] + "59" + text[19:]
    # Python's parser takes at most microseconds: nanoseconds are cut to six digits.
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[: min(digits, 6)] + tail[digits:]
    parsed = datetime.fromisoformat(head + dot + tail if dot else text)
    return parsed.replace(microsecond=999_999) if leap else parsed


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]


# The W3C trace context, as the CloudEvents distributed-tracing extension names it (and
# the Kafka record header beside it).
TRACEPARENT = "traceparent"
# Vendors' entries of that context: passed on unchanged (dspyops adds none).
TRACESTATE = "tracestate"


class Envelope(BaseModel):
    """A CloudEvents 1.0 event; `id` is the idempotency key of a command.

    Extensions `correlationid` (defaults to `id`), `causationid` and `actor` are ours;
    other CloudEvents extensions are kept as they come, as the spec asks.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: EnvelopeId
    source: Annotated[str, Field(min_length=1, max_length=1024)] = DEFAULT_SOURCE
    type: Annotated[str, Field(min_length=1, max_length=256)]
    time: Rfc3339 | None = None
    subject: Annotated[str, Field(max_length=256)] | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any] | None = None
    correlationid: EnvelopeId | None = None
    causationid: EnvelopeId | None = None
    actor: Annotated[str, Field(max_length=256)] | None = None
    # On `dspyops.event.*` only: the event's store position and its aggregate.
    position: StrictInt | None = None
    aggregateid: str | None = None
    aggregateversion: StrictInt | None = None

    @model_validator(mode="after")
    def _correlation_defaults_to_id(self) -> Envelope:
        if self.correlationid is None:
            object.__setattr__(self, "correlationid", self.id)
        return self

    @property
    def correlation_id(self) -> str:
        return self.correlationid or self.id

    @property
    def short_type(self) -> str:
        """`ExecuteProgram` for `dspyops.command.ExecuteProgram`."""
        return self.type.rsplit(".", 1)[-1]


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


def command_envelope(
    command_type: str,
    data: dict[str, Any],
    *,
    id: str | None = None,
    subject: str | None = None,
    correlationid: str | None = None,
    actor: str | None = None,
    source: str = DEFAULT_SOURCE,
) -> Envelope:
    return Envelope(
        id=id or new_id(),
        source=source,
        type=COMMAND_TYPE_PREFIX + command_type,
        time=now(),
        subject=subject,
        data=data,
        correlationid=correlationid,
        actor=actor,
    )


def trace_extensions(traceparent: str | None, tracestate: str | None) -> dict[str, Any]:
    """The CloudEvents distributed-tracing extensions for a W3C trace context (a
    `tracestate` only beside a `traceparent`)."""
    extensions: dict[str, Any] = {TRACEPARENT: traceparent} if traceparent else {}
    if traceparent and tracestate:
        extensions[TRACESTATE] = tracestate
    return extensions


def result_id(command_id: str, result_type: str) -> str:
    """Deterministic, so a result published again after a redelivery is recognisably the same."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dspyops:result:{command_id}:{result_type}"))


def result_envelope(
    command: Envelope,
    result_type: str,
    data: dict[str, Any],
    *,
    subject: str | None,
    id: str | None = None,
    source: str = DEFAULT_SOURCE,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> Envelope:
    """A result caused by `command`: same correlation id, `causationid` = the command id;
    `traceparent` (the W3C trace context of the work that made it) and `tracestate` as
    extensions."""
    return Envelope(
        id=id or result_id(command.id, result_type),
        source=source,
        type=RESULT_TYPE_PREFIX + result_type,
        time=now(),
        subject=subject,
        data=data,
        correlationid=command.correlation_id,
        causationid=command.id,
        actor=command.actor,
        **trace_extensions(traceparent, tracestate),
    )
