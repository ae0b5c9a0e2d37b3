"""Feedback on executions: RecordFeedback's handler.

Feedback belongs to the execution it judges (an `Execution.FeedbackRecorded` event), so an
execution's history holds what people and judges said of it. Corrected outputs are
checked, strictly, against the outputs of the signature of the version the execution ran:
they are labels a dataset may take later, and must fit the program as a label would.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.errors import InvalidInput, NotFound, prefixed
from dspyops.aggregates.execution import Execution
from dspyops.events.commands import RecordFeedback
from dspyops.events.results import FeedbackRecorded
from dspyops.signatures import ValidationFailed


def record_feedback(app: DspyOps, cmd: RecordFeedback, ctx: CommandContext) -> Outcome:
    execution = app.execution(cmd.execution_id)
    if execution is None:
        raise NotFound(f"no execution {cmd.execution_id!r}", loc=["execution_id"])
    program = app.program(execution.program_id, copy=False)
    corrected = None
    if cmd.corrected_outputs is not None:
        corrected = _checked_corrections(app, execution, cmd.corrected_outputs)
    execution.record_feedback(
        scale=program.scale,
        score=cmd.score,
        label=cmd.label,
        comment=cmd.comment,
        corrected_outputs=corrected,
        **ctx.meta(),
    )
    result = FeedbackRecorded(
        execution_id=execution.execution_id,
        program_id=execution.program_id,
        version=execution.version_used,
        number=execution.feedback_count,
        score=cmd.score,
        label=cmd.label,
    )
    return app.record(ctx, Outcome.of(result, execution.execution_id), execution)


def _checked_corrections(
    app: DspyOps, execution: Execution, outputs: dict[str, Any]
) -> dict[str, Any]:
    """`outputs` validated as labels of the version the execution ran."""
    program = app.program(execution.program_id, copy=False)
    compiled = app.compiled(program, program.get_version(execution.version_used))
    try:
        return compiled.validate_outputs(outputs, strict=True)
    except ValidationFailed as exc:
        raise InvalidInput(errors=prefixed(exc.errors, "corrected_outputs")) from exc
