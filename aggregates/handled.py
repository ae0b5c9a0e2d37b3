"""HandledCommand: the stored terminal outcome of one command id.

It is saved in the same transaction as the aggregates the command changed, so either both
are stored or neither; its id is derived from the command id, so a second worker that
handles the same command conflicts on it instead of recording twice.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.ids import command_uuid


class HandledCommand(Aggregate):
    @staticmethod
    def create_id(command_id: str) -> Any:
        return command_uuid(command_id)

    class Handled(Aggregate.Created):
        command_id: str
        command_type: str
        result_type: str
        subject: str
        data: dict[str, Any]
        correlation_id: str
        actor: str | None
        # Digest of the command's type and payload (None in version 1 events: unknown).
        payload_digest: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["payload_digest"] = None

    @event(Handled)
    def __init__(
        self,
        command_id: str,
        command_type: str,
        result_type: str,
        subject: str,
        data: dict[str, Any],
        correlation_id: str,
        actor: str | None,
        payload_digest: str | None = None,
    ) -> None:
        self.command_id = command_id
        self.command_type = command_type
        self.result_type = result_type
        self.subject = subject
        self.data = dict(data)
        self.payload_digest = payload_digest

    def same_command(self, command_type: str, payload_digest: str | None) -> bool:
        """Whether a command of this type and payload is the one handled (unknown: yes)."""
        if command_type and self.command_type and command_type != self.command_type:
            return False
        return payload_digest is None or self.payload_digest in (None, payload_digest)
