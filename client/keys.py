"""What a command record is keyed by on Kafka, and which id its results are about."""

from __future__ import annotations

from typing import Any

from dspyops.events.envelope import SUBJECT_FIELDS, Envelope


def record_key(envelope: Envelope) -> bytes:
    """The key the contract asks for: program (or dataset, corpus) id, else execution or
    command id."""
    data = envelope.data or {}
    if envelope.short_type == "ExecuteProgram":
        key = data.get("execution_id") or envelope.id
    else:
        key = subject_of(data) or envelope.id
    return str(key).encode()


def subject_of(data: dict[str, Any]) -> str | None:
    for field in SUBJECT_FIELDS:
        if isinstance(data.get(field), str) and data[field]:
            return str(data[field])
    return None
