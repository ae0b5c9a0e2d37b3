"""The audit trail: one `audit_log` row per event of a program, dataset, corpus or run,
and per feedback on an execution.

It has no handlers of its own: the applier that changes a row alone knows the row's
values before the event, so it records the entry, with what changed, through `AuditTrail`.
Execution events are not audited (the execution row is their record), but for the
feedback on an execution: someone's judgement, with who gave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dspyops.projections.appliers.events import Recorded
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.read_schema import AUDIT_LOG


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """`{field: {"before": old, "after": new}}` for each field whose value differs."""
    old = before or {}
    return {
        name: {"before": old.get(name), "after": value}
        for name, value in after.items()
        if old.get(name) != value
    }


def meta(event: Recorded) -> dict[str, Any]:
    """The asking command's fields, which rows and audit entries both keep."""
    return {
        "command_id": event.command_id,
        "correlation_id": event.correlation_id,
        "actor": event.actor,
    }


class AuditTrail:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def record(
        self,
        event: Recorded,
        position: int,
        *,
        kind: str,
        aggregate_id: str,
        program_id: str | None,
        changed: dict[str, Any],
    ) -> None:
        self.rows.insert(
            AUDIT_LOG,
            {
                "position": position,
                "aggregate_kind": kind,
                "aggregate_id": aggregate_id,
                "aggregate_version": event.originator_version,
                "program_id": program_id,
                "event_type": type(event).__name__,
                "occurred_at": event.timestamp,
                **meta(event),
                "changes": changed,
            },
        )
