"""What Optimization and Evaluation runs share: requested -> running -> progress ->
completed | failed | cancelled, and the command that asked for the run.

The asking command's terminal outcome is stored when the run ends, so the run keeps the
command's id, correlation id and actor for events recorded later by the worker.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.errors import IllegalTransition

REQUESTED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "requested",
    "running",
    "completed",
    "failed",
    "cancelled",
)
OPEN = frozenset({REQUESTED, RUNNING})


class Run(Aggregate):
    """Base of the run aggregates; subclasses add their own Requested and Completed events.

    (No class-level annotations here: eventsourcing would take them as constructor fields.)
    """

    def _init_run(
        self,
        run_id: str,
        program_id: str,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        payload_digest: str | None,
    ) -> None:
        self.run_id = run_id
        self.program_id = program_id
        self.command_id = command_id
        # The asking command's payload digest: the same id with another payload is refused.
        self.payload_digest = payload_digest
        self.correlation_id = correlation_id
        self.actor = actor
        self.status = REQUESTED
        self.step = 0
        self.total = 0
        self.best_score: float | None = None
        self.error_code: str | None = None
        self.error_message: str | None = None
        self.cancel_reason: str | None = None
        # Optimizations stopped over budget: the version made from their best candidate.
        self.kept_version: int | None = None
        # How often a worker started the run: each start is recorded as progress step 0
        # (a worker that died mid-run makes the next one start it again).
        self.starts = 0

    def origin(self) -> dict[str, Any]:
        """Event metadata for events the worker records on behalf of the asking command."""
        return {
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "actor": self.actor,
        }

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def _check(self, allowed: frozenset[str], action: str) -> None:
        if self.status not in allowed:
            raise IllegalTransition(
                f"cannot {action} run {self.run_id!r} in status {self.status!r}", loc=["status"]
            )

    def start(self, **meta: Any) -> None:
        self._check(frozenset({REQUESTED}), "start")
        self._started(**meta)

    def progress(self, step: int, total: int, best_score: float | None, **meta: Any) -> None:
        self._check(frozenset({RUNNING}), "record progress of")
        self._progressed(step=step, total=total, best_score=best_score, **meta)

    def fail(self, code: str, message: str, kept_version: int | None = None, **meta: Any) -> None:
        self._check(OPEN, "fail")
        self._failed(code=code, message=message, kept_version=kept_version, **meta)

    def cancel(self, reason: str, **meta: Any) -> None:
        self._check(OPEN, "cancel")
        self._cancelled(reason=reason, **meta)

    @event("Started")
    def _started(self, command_id: str, correlation_id: str, actor: str | None) -> None:
        self.status = RUNNING

    @event("Progressed")
    def _progressed(
        self,
        step: int,
        total: int,
        best_score: float | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.step = step
        self.total = total
        self.best_score = best_score
        if step == 0:
            self.starts += 1

    class Failed(Aggregate.Event):
        code: str
        message: str
        # The version an optimization stopped over budget kept (its best candidate,
        # better than the baseline); None otherwise, and for every version 1 event.
        kept_version: int | None
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["kept_version"] = None

    @event(Failed)
    def _failed(
        self,
        code: str,
        message: str,
        kept_version: int | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.status = FAILED
        self.error_code = code
        self.error_message = message
        self.kept_version = kept_version

    @event("Cancelled")
    def _cancelled(
        self, reason: str, command_id: str, correlation_id: str, actor: str | None
    ) -> None:
        self.status = CANCELLED
        self.cancel_reason = reason
