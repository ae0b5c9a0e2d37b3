"""The dead-letter message: a record we could not decode, kept with the reason.

The original bytes are quoted (at most 64 KiB) so an operator can see what was sent;
the id depends only on where the record sat, so a redelivered poison message produces
the same dead letter again instead of a new one.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from dspyops.events.codec import Undecodable, UndecodableCode
from dspyops.events.envelope import DEFAULT_SOURCE, Envelope, now

DEADLETTER_TYPE_PREFIX = "dspyops.deadletter."
DEADLETTER_TYPE = DEADLETTER_TYPE_PREFIX + "Undeliverable"
MAX_QUOTED_PAYLOAD_BYTES = 64 * 1024
MAX_QUOTED_KEY_BYTES = 1024


class DeadLetterError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    code: UndecodableCode
    message: str


class Undeliverable(BaseModel):
    """Where the record was, why it was refused, and the start of what it held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    key: str | None = Field(description="The record key; base64 when `key_base64` is true.")
    key_base64: bool = False
    key_truncated: bool = False
    error: DeadLetterError
    payload: str | None = Field(
        description="The first 64 KiB of the value; base64 when `payload_base64` is true."
    )
    payload_base64: bool = False
    payload_bytes: Annotated[int, Field(ge=0)]
    truncated: bool


def deadletter_id(topic: str, partition: int, offset: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dspyops:deadletter:{topic}:{partition}:{offset}"))


def deadletter_envelope(
    raw_value: bytes | None,
    *,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    error: Undecodable,
) -> Envelope:
    """The envelope to publish on the dead-letter topic (keyed by the original key)."""
    key_text, key_b64, key_truncated = _quote(key, MAX_QUOTED_KEY_BYTES)
    payload, payload_b64, truncated = _quote(raw_value, MAX_QUOTED_PAYLOAD_BYTES)
    data = Undeliverable(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key_text,
        key_base64=key_b64,
        key_truncated=key_truncated,
        error=DeadLetterError(code=error.code, message=error.message),
        payload=payload,
        payload_base64=payload_b64,
        payload_bytes=len(raw_value) if raw_value is not None else 0,
        truncated=truncated,
    )
    return Envelope(
        id=deadletter_id(topic, partition, offset),
        source=DEFAULT_SOURCE,
        type=DEADLETTER_TYPE,
        time=now(),
        data=data.model_dump(mode="json"),
    )


def _quote(raw: bytes | None, limit: int) -> tuple[str | None, bool, bool]:
    """(text, is_base64, truncated): UTF-8 text when the bytes are UTF-8, else base64."""
    if raw is None:
        return None, False, False
    truncated = len(raw) > limit
    head = raw[:limit]
    try:
        return head.decode("utf-8"), False, truncated
    except UnicodeDecodeError as exc:
        # The cut may split one character (at most 3 bytes); the rest must still be text.
        if truncated and exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            try:
                return head[: exc.start].decode("utf-8"), False, truncated
            except UnicodeDecodeError:
                pass
    return base64.b64encode(head).decode("ascii"), True, truncated
