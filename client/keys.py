"""What a command record is keyed by on Kafka, and which id its results are about."""

from __future__ import annotations

from typing import Any

from dspyops.events.envelope import Envelope


def record_key(envelope: Envelope) -> bytes:
    """The key the contract asks for: program (or dataset, corpus) id, else execution or
    command id."""
    data = envelope.data or {}
    if envelope.short_type == "ExecuteProgram":
        key = data.get("execution_id") or envelope.id
    else:
        key = (
            data.get("program_id") or data.get("dataset_id") or data.get("corpus_id") or envelope.id
        )
    return str(key).encode()


def subject_of(data: dict[str, Any]) -> str | None:
    for field in ("program_id", "dataset_id", "corpus_id", "execution_id"):
        if isinstance(data.get(field), str):
            return str(data[field])
    return None
