"""What every application service receives and returns: who asked, and the terminal result."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dspyops.events.results import Result


class CommandContext(BaseModel):
    """The envelope facts a command is handled under; copied onto every event it records."""

    model_config = ConfigDict(frozen=True)

    command_id: str
    correlation_id: str
    actor: str | None = None
    # The envelope's `source`: which producer sent the command (for its rate limit).
    source: str | None = None
    command_type: str = ""
    # A digest of the command's type and payload: the same id sent again with another
    # type or payload is a reused id, answered `id_reused` (never applied, never stored).
    payload_digest: str | None = None
    # False when another command took this id while this one's run was going: its run
    # still ends, and records no outcome under the id (the id's outcome is the other's).
    store_outcome: bool = True
    # The W3C trace context the command's messages carry on (its span's when tracing is
    # on, else the command's own), stored with its events (`trace_context`).
    traceparent: str | None = None
    tracestate: str | None = None

    def meta(self) -> dict[str, Any]:
        """The keyword arguments every decorated event method takes."""
        return {
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "actor": self.actor,
        }


class Outcome(BaseModel):
    """A result payload by type name, ready for the results topic and for replay."""

    model_config = ConfigDict(frozen=True)

    result_type: str
    subject: str
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, result: Result, subject: str) -> Outcome:
        return cls(
            result_type=type(result).__name__, subject=subject, data=result.model_dump(mode="json")
        )

    @property
    def rejected(self) -> bool:
        return self.result_type == "CommandRejected"
