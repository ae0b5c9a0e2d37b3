"""The executions read model, the bulk of the events: rows are built in memory and
inserted together when the batch is flushed; and the feedback on executions, one row and
one audit entry each (people's judgements are audited; the runs themselves are not)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dspyops.aggregates.execution import FAILED, REQUESTED, SUCCEEDED, Execution
from dspyops.projections.appliers.audit import AuditTrail, changes, meta
from dspyops.projections.appliers.events import (
    ExecutionFailed,
    ExecutionRequested,
    ExecutionSucceeded,
    FeedbackRecorded,
    Handlers,
    Recorded,
    event_class,
)
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.read_schema import EXECUTIONS, FEEDBACK


class ExecutionsApplier:
    def __init__(self, rows: Rows, audit: AuditTrail) -> None:
        self.rows = rows
        self.audit = audit
        # Requested in this batch, not inserted yet; their end usually follows in the batch.
        self.pending: dict[UUID, Row] = {}

    def handlers(self) -> Handlers:
        return {
            event_class(Execution, "Requested"): self.requested,
            event_class(Execution, "Succeeded"): self.succeeded,
            event_class(Execution, "Failed"): self.failed,
            event_class(Execution, "FeedbackRecorded"): self.feedback_recorded,
        }

    def requested(self, e: ExecutionRequested, position: int) -> None:
        self.pending[e.originator_id] = {
            "id": e.originator_id,
            "execution_id": e.execution_id,
            "program_id": e.program_id,
            "version": e.version,
            "status": REQUESTED,
            "inputs": dict(e.inputs),
            "outputs": None,
            "latency_ms": None,
            "prompt_tokens": None,
            "completion_tokens": None,
            "total_tokens": None,
            "offline": False,
            "error_code": None,
            "error_message": None,
            "error_details": None,
            **meta(e),
            "requested_at": e.timestamp,
            "completed_at": None,
            "position": position,
            "trace": None,
            "failed_step": None,
            "cost_usd": None,
            "route": e.route,
        }

    def succeeded(self, e: ExecutionSucceeded, position: int) -> None:
        usage = dict(e.usage or {})
        self._ended(
            e,
            status=SUCCEEDED,
            outputs=dict(e.outputs),
            latency_ms=e.latency_ms,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            offline=bool(e.offline),
            completed_at=e.timestamp,
            trace=e.trace,
            cost_usd=e.cost_usd,
        )

    def failed(self, e: ExecutionFailed, position: int) -> None:
        usage = e.usage  # None for failures recorded before their tokens were
        self._ended(
            e,
            status=FAILED,
            latency_ms=e.latency_ms,
            prompt_tokens=usage.get("prompt_tokens") if usage is not None else None,
            completion_tokens=usage.get("completion_tokens") if usage is not None else None,
            total_tokens=usage.get("total_tokens") if usage is not None else None,
            cost_usd=e.cost_usd,
            error_code=e.code,
            error_message=e.message,
            error_details=list(e.details),
            trace=e.trace,
            failed_step=e.failed_step,
            completed_at=e.timestamp,
        )

    def feedback_recorded(self, e: FeedbackRecorded, position: int) -> None:
        """Its own row, written at once: it needs nothing of the execution's row."""
        given = {
            "score": e.score,
            "label": e.label,
            "comment": e.comment,
            "corrected_outputs": e.corrected_outputs,
        }
        self.rows.insert(
            FEEDBACK,
            {
                "execution_id": e.execution_id,
                "number": e.number,
                "program_id": e.program_id,
                "version": e.version,
                **given,
                **meta(e),
                "recorded_at": e.timestamp,
                "position": position,
            },
        )
        after = {"number": e.number, **{k: v for k, v in given.items() if v is not None}}
        self.audit.record(
            e,
            position,
            kind="execution",
            aggregate_id=e.execution_id,
            program_id=e.program_id,
            changed=changes(None, {"feedback": after}),
        )

    def flush(self) -> None:
        """Insert the rows requested in this batch, in one statement."""
        rows = list(self.pending.values())
        self.pending.clear()
        self.rows.insert_many(EXECUTIONS, rows)

    def _ended(self, e: Recorded, **values: Any) -> None:
        pending = self.pending.get(e.originator_id)
        if pending is not None:
            pending.update(values)
        else:
            self.rows.update(EXECUTIONS, {"id": e.originator_id}, values)
