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

    @event("Handled")
    def __init__(
        self,
        command_id: str,
        command_type: str,
        result_type: str,
        subject: str,
        data: dict[str, Any],
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.command_id = command_id
        self.command_type = command_type
        self.result_type = result_type
        self.subject = subject
        self.data = dict(data)
