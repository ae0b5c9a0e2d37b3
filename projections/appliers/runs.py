"""The runs read model: optimizations and evaluations, one row each (`kind`)."""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.run import CANCELLED, COMPLETED, FAILED, REQUESTED, RUNNING, Run
from dspyops.projections.appliers.audit import AuditTrail, changes, meta
from dspyops.projections.appliers.events import (
    EvaluationCompleted,
    EvaluationRequested,
    Handlers,
    OptimizationCandidateScored,
    OptimizationCompleted,
    OptimizationRequested,
    Recorded,
    RunCancelled,
    RunFailed,
    RunProgressed,
    RunRequested,
    event_class,
)
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.read_schema import RUNS

# Row columns an audit entry of a new run leaves out: identity, time and the command's
# fields, which the entry holds in its own columns.
NOT_AUDITED = frozenset(
    {"id", "position", "requested_at", "updated_at", "command_id", "correlation_id", "actor"}
)


class RunsApplier:
    def __init__(self, rows: Rows, audit: AuditTrail) -> None:
        self.rows = rows
        self.audit = audit

    def handlers(self) -> Handlers:
        # Started, Progressed, Failed and Cancelled are defined once, on Run: each run
        # kind's events subclass them, and the dispatcher finds them through the MRO.
        return {
            event_class(Optimization, "Requested"): self.optimization_requested,
            event_class(Evaluation, "Requested"): self.evaluation_requested,
            event_class(Run, "Started"): self.started,
            event_class(Run, "Progressed"): self.progressed,
            event_class(Run, "Failed"): self.failed,
            event_class(Run, "Cancelled"): self.cancelled,
            event_class(Optimization, "CandidateScored"): self.candidate_scored,
            event_class(Optimization, "Completed"): self.optimization_completed,
            event_class(Evaluation, "Completed"): self.evaluation_completed,
        }

    def optimization_requested(self, e: OptimizationRequested, position: int) -> None:
        self._requested(
            e,
            position,
            kind="optimization",
            run_id=e.optimization_id,
            optimizer=e.optimizer,
            config=dict(e.config),
            base_version=e.base_version,
        )

    def evaluation_requested(self, e: EvaluationRequested, position: int) -> None:
        self._requested(e, position, kind="evaluation", run_id=e.evaluation_id, version=e.version)

    def started(self, e: Recorded, position: int) -> None:
        self._change(e, position, status=RUNNING)

    def progressed(self, e: RunProgressed, position: int) -> None:
        self._change(e, position, step=e.step, total=e.total, best_score=e.best_score)

    def candidate_scored(self, e: OptimizationCandidateScored, position: int) -> None:
        """A checkpoint: the row is unchanged but for its time; the audit trail says
        which candidate was recorded (its state stays in the event store)."""
        before = self.rows.select(RUNS, {"id": e.originator_id})
        self.rows.update(RUNS, {"id": e.originator_id}, {"updated_at": e.timestamp})
        self.audit.record(
            e,
            position,
            kind=before["kind"],
            aggregate_id=before["run_id"],
            program_id=before["program_id"],
            changed={"candidate": {"before": None, "after": {"seed": e.seed, "score": e.score}}},
        )

    def failed(self, e: RunFailed, position: int) -> None:
        self._change(
            e,
            position,
            status=FAILED,
            error_code=e.code,
            error_message=e.message,
            kept_version=e.kept_version,
        )

    def cancelled(self, e: RunCancelled, position: int) -> None:
        self._change(e, position, status=CANCELLED, cancel_reason=e.reason)

    def optimization_completed(self, e: OptimizationCompleted, position: int) -> None:
        self._change(
            e,
            position,
            status=COMPLETED,
            version_created=e.version,
            baseline_score=e.baseline_score,
            optimized_score=e.optimized_score,
            provenance=e.provenance,
        )

    def evaluation_completed(self, e: EvaluationCompleted, position: int) -> None:
        self._change(
            e,
            position,
            status=COMPLETED,
            score=e.score,
            errored=e.errored,
            per_example=list(e.per_example),
            provenance=e.provenance,
        )

    def _requested(self, e: RunRequested, position: int, **fields: Any) -> None:
        row: Row = {
            "id": e.originator_id,
            "program_id": e.program_id,
            "dataset_id": e.dataset_id,
            "status": REQUESTED,
            "metric": e.metric,
            "dataset_version": e.dataset_version,
            "step": 0,
            "total": 0,
            **meta(e),
            "requested_at": e.timestamp,
            "updated_at": e.timestamp,
            "position": position,
            **fields,
        }
        self.rows.insert(RUNS, row)
        audited = {k: v for k, v in row.items() if k not in NOT_AUDITED}
        self.audit.record(
            e,
            position,
            kind=row["kind"],
            aggregate_id=row["run_id"],
            program_id=row["program_id"],
            changed=changes(None, audited),
        )

    def _change(self, e: Recorded, position: int, **after: Any) -> None:
        before = self.rows.select(RUNS, {"id": e.originator_id})
        self.rows.update(RUNS, {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        # Per-example results can be large; the run's row holds them, the audit entry not.
        audited = {k: v for k, v in after.items() if k != "per_example"}
        self.audit.record(
            e,
            position,
            kind=before["kind"],
            aggregate_id=before["run_id"],
            program_id=before["program_id"],
            changed=changes(before, audited),
        )
