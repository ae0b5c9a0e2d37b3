"""RecordFeedback: feedback kept in the execution's history, and what it rejects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dspyops.aggregates.app import DspyOps, ExecutionPlan, Outcome, handle
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.program import Program
from dspyops.events.commands import FeedbackScale, RecordFeedback, RegisterProgram
from dspyops.events.results import ErrorInfo
from tests.support.executions import complete
from tests.unit.aggregates.test_application import (
    SIGNATURE,
    Ids,
    execute,
    log_length,
    program_from_older_snapshot,
    register,
    restored,
    topics_since,
)


def executed(app: DspyOps, ctx: Ids, execution_id: str = "e1", *, fail: bool = False) -> None:
    c = ctx(execution_id)
    plan = execute(app, c)
    assert isinstance(plan, ExecutionPlan)
    if fail:
        complete(app, plan, c, error=ErrorInfo(code="lm_error", message="bad gateway"))
    else:
        complete(app, plan, c, outputs={"answer": "a", "confidence": 0.5})


def feedback(app: DspyOps, ctx: Ids, **fields: Any) -> Outcome:
    fields.setdefault("execution_id", "e1")
    return handle(app, RecordFeedback(**fields), ctx())


def rejection(outcome: Outcome) -> tuple[str, list[str | int]]:
    assert outcome.result_type == "CommandRejected", outcome.data
    (error,) = outcome.data["errors"]
    return error["type"], error["loc"]


def test_feedback_is_recorded_on_the_execution_many_times(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    executed(app, ctx)
    length = log_length(app)
    first = feedback(
        app,
        ctx,
        score=0.8,
        label="good",
        comment="close",
        corrected_outputs={"answer": "b", "confidence": 1},
    )
    assert first.result_type == "FeedbackRecorded"
    assert first.subject == "e1"
    assert first.data == {
        "execution_id": "e1",
        "program_id": "p",
        "version": 1,
        "number": 1,
        "score": 0.8,
        "label": "good",
    }
    second = feedback(app, ctx, score=0.0)
    assert (second.data["number"], second.data["label"]) == (2, None)
    assert topics_since(app, length) == ["FeedbackRecorded", "Handled"] * 2
    events: list[Any] = list(app.events.get(Execution.create_id("e1")))
    recorded = [e for e in events if type(e).__name__ == "FeedbackRecorded"]
    assert [e.number for e in recorded] == [1, 2]
    # Validated as labels: 1 is the float 1.0, as the signature says.
    assert recorded[0].corrected_outputs == {"answer": "b", "confidence": 1.0}
    assert (recorded[0].actor, recorded[0].program_id, recorded[0].version) == ("t", "p", 1)
    execution = app.execution("e1")
    assert execution is not None
    assert execution.feedback_count == 2


def test_a_redelivered_feedback_records_nothing(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    executed(app, ctx)
    command = RecordFeedback(execution_id="e1", score=1.0)
    first = handle(app, command, ctx("f1"))
    length = log_length(app)
    assert handle(app, command, ctx("f1")) == first
    assert log_length(app) == length


def test_feedback_on_a_failed_execution_is_kept(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    executed(app, ctx, fail=True)
    outcome = feedback(app, ctx, corrected_outputs={"answer": "right", "confidence": 0.9})
    assert outcome.result_type == "FeedbackRecorded"
    assert outcome.data["score"] is None


def test_feedback_on_an_unknown_execution_is_rejected(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    length = log_length(app)
    outcome = feedback(app, ctx, execution_id="nope", score=0.5)
    assert rejection(outcome) == ("not_found", ["execution_id"])
    assert topics_since(app, length) == ["Handled"]


def test_feedback_on_an_execution_not_ended_is_rejected(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    c = ctx("e1")
    inputs = {"question": "q", "context": "c"}
    app.save(Execution(execution_id="e1", program_id="p", version=1, inputs=inputs, **c.meta()))
    assert rejection(feedback(app, ctx, score=0.5)) == ("illegal_transition", ["execution_id"])


@pytest.mark.parametrize("score", [-0.01, 1.5])
def test_a_score_outside_the_scale_is_rejected(app: DspyOps, ctx: Ids, score: float) -> None:
    register(app, ctx)
    executed(app, ctx)
    length = log_length(app)
    assert rejection(feedback(app, ctx, score=score)) == ("out_of_range", ["score"])
    assert topics_since(app, length) == ["Handled"]


@pytest.mark.parametrize(
    ("corrected", "error_type", "loc"),
    [
        ({"answer": "b"}, "missing", ["corrected_outputs", "confidence"]),
        ({"answer": "b", "confidence": 2}, "less_than_equal", ["corrected_outputs", "confidence"]),
        ({"answer": 3, "confidence": 1}, "string_type", ["corrected_outputs", "answer"]),
        (
            {"answer": "b", "confidence": 1, "extra": 1},
            "extra_forbidden",
            ["corrected_outputs", "extra"],
        ),
    ],
)
def test_corrected_outputs_must_fit_the_signature(
    app: DspyOps, ctx: Ids, corrected: dict[str, Any], error_type: str, loc: list[str]
) -> None:
    register(app, ctx)
    executed(app, ctx)
    length = log_length(app)
    outcome = feedback(app, ctx, score=0.1, corrected_outputs=corrected)
    assert rejection(outcome) == (error_type, loc)
    assert topics_since(app, length) == ["Handled"]


def test_feedback_must_say_something() -> None:
    with pytest.raises(ValidationError, match="give a score"):
        RecordFeedback(execution_id="e1")
    with pytest.raises(ValidationError):
        RecordFeedback(execution_id="e1", score=float("nan"))


def stars(app: DspyOps, ctx: Ids) -> None:
    """Program "p" whose feedback is 1..5 stars, and its execution "e1"."""
    outcome = handle(
        app,
        RegisterProgram(
            program_id="p",
            name="QA",
            signature=SIGNATURE,
            feedback_scale=FeedbackScale(min=1, max=5),
        ),
        ctx(),
    )
    assert outcome.result_type == "ProgramRegistered", outcome.data
    executed(app, ctx)


def test_a_program_declares_its_feedback_scale(app: DspyOps, ctx: Ids) -> None:
    stars(app, ctx)
    assert app.program("p").scale == (1.0, 5.0)
    assert feedback(app, ctx, score=4.5).result_type == "FeedbackRecorded"
    assert feedback(app, ctx, score=5).result_type == "FeedbackRecorded"
    refused = feedback(app, ctx, score=0.5)
    assert rejection(refused) == ("out_of_range", ["score"])
    assert "between 1 and 5" in refused.data["errors"][0]["msg"]


def test_a_feedback_scale_is_ordered() -> None:
    for low, high in ((1, 1), (5, 1)):
        with pytest.raises(ValidationError, match="must be below"):
            FeedbackScale(min=low, max=high)


def test_programs_registered_before_scales_keep_zero_to_one(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    program = app.program("p")
    assert (program.feedback_scale, program.scale) == (None, (0.0, 1.0))
    # A Registered event as version 3 wrote it: no feedback_scale.
    stored = app.events.recorder.select_events(program.id, limit=1)[0]
    state = app.mapper.transcoder.decode(stored.state)
    del state["feedback_scale"]
    state["class_version"] = 3
    older = restored(app, stored, state)
    assert isinstance(older, Program.Registered)
    loaded = older.mutate(None)
    assert isinstance(loaded, Program)
    assert loaded.scale == (0.0, 1.0)
    # And a program snapshot as class version 6 wrote it.
    assert program_from_older_snapshot(app, "p", 6, "feedback_scale").scale == (0.0, 1.0)
