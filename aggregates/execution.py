"""The Execution aggregate: one run of one program version, requested -> succeeded | failed.

One aggregate per execution keeps a busy Program small. The worker usually records the
request and the terminal event together after the LM call, but a request stored alone
(e.g. by a worker that records before calling) is a valid state to complete later.
Once ended, an execution collects feedback (`FeedbackRecorded`), any number of times.

This module is long because its event classes are declared here, beside the methods that
record them, with the class versions and upcasts that keep events stored long ago
loadable.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.errors import IllegalTransition, InvalidInput
from dspyops.aggregates.ids import execution_uuid

REQUESTED, SUCCEEDED, FAILED = "requested", "succeeded", "failed"

# The range of feedback scores of a program that declares none (RegisterProgram's
# `feedback_scale`); the program's own is passed to `record_feedback`.
FEEDBACK_SCALE = (0.0, 1.0)


class Execution(Aggregate):
    @staticmethod
    def create_id(execution_id: str) -> Any:
        return execution_uuid(execution_id)

    # Version 2 of the endings carries the execution's trace (runtime/trace.py): every
    # step, LM call, tool and retrieval, nested; a failure also names the step that
    # raised. Version 1 events had neither: None. Version 3 carries the cost in USD
    # (None: unknown, as for every earlier event), and a failure its billed tokens
    # (earlier failures: None, not zero: they were not counted).

    class Succeeded(Aggregate.Event):
        outputs: dict[str, Any]
        latency_ms: float
        usage: dict[str, int]
        model: str
        offline: bool
        command_id: str
        correlation_id: str
        actor: str | None
        trace: dict[str, Any] | None
        cost_usd: float | None
        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["trace"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["cost_usd"] = None

    class Failed(Aggregate.Event):
        code: str
        message: str
        details: list[dict[str, Any]]
        latency_ms: float | None
        model: str | None
        command_id: str
        correlation_id: str
        actor: str | None
        trace: dict[str, Any] | None
        failed_step: str | None
        usage: dict[str, int] | None
        cost_usd: float | None
        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(trace=None, failed_step=None)

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.update(usage=None, cost_usd=None)

    class Requested(Aggregate.Created):
        execution_id: str
        program_id: str
        version: int
        inputs: dict[str, Any]
        command_id: str
        correlation_id: str
        actor: str | None
        # How the version was chosen (results.Route as JSON: alias, split arm, bucket,
        # reason); version 2. None in version 1 events, recorded before routes were.
        route: dict[str, Any] | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["route"] = None

    @event(Requested)
    def __init__(
        self,
        execution_id: str,
        program_id: str,
        version: int,
        inputs: dict[str, Any],
        command_id: str,
        correlation_id: str,
        actor: str | None,
        route: dict[str, Any] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.program_id = program_id
        self.version_used = version
        self.route = route
        self.inputs = dict(inputs)
        # The command that asked for it: another command reusing this id is rejected.
        self.command_id = command_id
        self.status = REQUESTED
        self.outputs: dict[str, Any] | None = None
        self.latency_ms: float | None = None
        self.usage: dict[str, int] | None = None
        self.model: str | None = None
        self.offline = False
        self.error_code: str | None = None
        self.error_message: str | None = None
        self.error_details: list[dict[str, Any]] = []
        self.trace: dict[str, Any] | None = None
        self.failed_step: str | None = None
        self.cost_usd: float | None = None
        # Feedback recorded on it so far; the next one is number `feedback_count + 1`.
        self.feedback_count = 0
        # The corrected outputs of its latest feedback that gave some: its label when it
        # is promoted into a dataset (PromoteExecutions).
        self.corrected_outputs: dict[str, Any] | None = None

    def _check_open(self) -> None:
        if self.status != REQUESTED:
            raise IllegalTransition(
                f"execution {self.execution_id!r} already {self.status}", loc=["status"]
            )

    def succeed(
        self,
        *,
        outputs: dict[str, Any],
        latency_ms: float,
        usage: dict[str, int],
        model: str,
        offline: bool,
        trace: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        **meta: Any,
    ) -> None:
        self._check_open()
        self._succeeded(
            outputs=outputs,
            latency_ms=latency_ms,
            usage=usage,
            model=model,
            offline=offline,
            trace=trace,
            cost_usd=cost_usd,
            **meta,
        )

    def fail(
        self,
        *,
        code: str,
        message: str,
        details: list[dict[str, Any]],
        latency_ms: float | None,
        model: str | None,
        trace: dict[str, Any] | None = None,
        failed_step: str | None = None,
        usage: dict[str, int] | None = None,
        cost_usd: float | None = None,
        **meta: Any,
    ) -> None:
        self._check_open()
        self._failed(
            code=code,
            message=message,
            details=details,
            latency_ms=latency_ms,
            model=model,
            trace=trace,
            failed_step=failed_step,
            usage=usage,
            cost_usd=cost_usd,
            **meta,
        )

    @event(Succeeded)
    def _succeeded(
        self,
        outputs: dict[str, Any],
        latency_ms: float,
        usage: dict[str, int],
        model: str,
        offline: bool,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        trace: dict[str, Any] | None = None,
        cost_usd: float | None = None,
    ) -> None:
        self.status = SUCCEEDED
        self.outputs = dict(outputs)
        self.latency_ms = latency_ms
        self.usage = dict(usage)
        self.model = model
        self.offline = offline
        self.trace = trace
        self.cost_usd = cost_usd

    @event(Failed)
    def _failed(
        self,
        code: str,
        message: str,
        details: list[dict[str, Any]],
        latency_ms: float | None,
        model: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        trace: dict[str, Any] | None = None,
        failed_step: str | None = None,
        usage: dict[str, int] | None = None,
        cost_usd: float | None = None,
    ) -> None:
        self.status = FAILED
        self.error_code = code
        self.error_message = message
        self.error_details = list(details)
        self.latency_ms = latency_ms
        self.model = model
        self.trace = trace
        self.failed_step = failed_step
        self.usage = dict(usage) if usage is not None else None
        self.cost_usd = cost_usd

    def record_feedback(
        self,
        *,
        score: float | None,
        label: str | None,
        comment: str | None,
        corrected_outputs: dict[str, Any] | None,
        scale: tuple[float, float] = FEEDBACK_SCALE,
        **meta: Any,
    ) -> None:
        """Feedback on an ended execution (a failed one too: its corrected outputs say
        what it should have answered). `corrected_outputs` come validated by the caller."""
        if self.status == REQUESTED:
            raise IllegalTransition(
                f"execution {self.execution_id!r} has not ended: feedback waits for its end",
                loc=["execution_id"],
            )
        low, high = scale
        if score is not None and not low <= score <= high:
            raise InvalidInput(
                f"score {score} is outside the program's feedback scale {low:g}..{high:g}",
                errors=[
                    {
                        "loc": ["score"],
                        "msg": f"score must be between {low:g} and {high:g}",
                        "type": "out_of_range",
                    }
                ],
            )
        self._feedback_recorded(
            execution_id=self.execution_id,
            number=self.feedback_count + 1,
            program_id=self.program_id,
            version=self.version_used,
            score=score,
            label=label,
            comment=comment,
            corrected_outputs=corrected_outputs,
            **meta,
        )

    @event("FeedbackRecorded")
    def _feedback_recorded(
        self,
        execution_id: str,
        number: int,
        program_id: str,
        version: int,
        score: float | None,
        label: str | None,
        comment: str | None,
        corrected_outputs: dict[str, Any] | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.feedback_count = number
        if corrected_outputs is not None:
            self.corrected_outputs = dict(corrected_outputs)

    # --- queries -------------------------------------------------------------------

    @property
    def labelled_outputs(self) -> dict[str, Any] | None:
        """What it should answer: the latest corrected outputs, else a success's own
        outputs; None for a failure nobody corrected (or one not ended)."""
        if self.corrected_outputs is not None:
            return self.corrected_outputs
        return self.outputs if self.status == SUCCEEDED else None
