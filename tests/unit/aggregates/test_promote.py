"""PromoteExecutions: datasets from production executions, each execution added once."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dspyops.aggregates.app import DspyOps, ExecutionPlan, Outcome, handle
from dspyops.aggregates.dataset import MAX_EXAMPLE_BYTES, Dataset
from dspyops.aggregates.errors import InvalidInput
from dspyops.aggregates.execution import Execution
from dspyops.events.commands import (
    AppendExamples,
    PromoteExecutions,
    RecordFeedback,
    RegisterDataset,
)
from dspyops.events.results import ErrorInfo
from tests.support.executions import complete
from tests.unit.aggregates.test_application import (
    Ids,
    execute,
    log_length,
    register,
    restored,
    topics_since,
)

CORRECTED = {"answer": "better", "confidence": 1.0}


@pytest.fixture
def ready(app: DspyOps, ctx: Ids) -> None:
    """A program with executions e1, e2 (succeeded), f1 (failed), and an empty dataset."""
    register(app, ctx)
    for execution_id, question in (("e1", "q1"), ("e2", "q2")):
        ran(app, ctx, execution_id, {"question": question, "context": "c"})
    ran(app, ctx, "f1", {"question": "q3", "context": "c"}, fail=True)
    outcome = handle(app, RegisterDataset(dataset_id="d", name="D"), ctx())
    assert outcome.result_type == "DatasetRegistered"


def ran(
    app: DspyOps, ctx: Ids, execution_id: str, inputs: dict[str, Any], *, fail: bool = False
) -> None:
    c = ctx(execution_id)
    plan = execute(app, c, inputs)
    assert isinstance(plan, ExecutionPlan)
    if fail:
        complete(app, plan, c, error=ErrorInfo(code="lm_error", message="bad gateway"))
    else:
        complete(app, plan, c, outputs={"answer": f"a-{execution_id}", "confidence": 0.5})


def promote(app: DspyOps, ctx: Ids, *execution_ids: str, dataset_id: str = "d") -> Outcome:
    return handle(
        app, PromoteExecutions(dataset_id=dataset_id, execution_ids=list(execution_ids)), ctx()
    )


def corrected(app: DspyOps, ctx: Ids, execution_id: str, outputs: dict[str, Any]) -> None:
    outcome = handle(
        app, RecordFeedback(execution_id=execution_id, corrected_outputs=outputs), ctx()
    )
    assert outcome.result_type == "FeedbackRecorded", outcome.data


def sourced(app: DspyOps) -> list[tuple[str | None, dict[str, Any]]]:
    dataset = app.dataset("d")
    return list(zip(dataset.sources, dataset.examples, strict=True))


@pytest.mark.usefixtures("ready")
def test_executions_become_examples_that_keep_their_source(app: DspyOps, ctx: Ids) -> None:
    length = log_length(app)
    outcome = promote(app, ctx, "e1", "e2")
    assert outcome.result_type == "ExecutionsPromoted", outcome.data
    assert outcome.subject == "d"
    data = outcome.data
    assert (data["appended"], data["skipped"], data["size"]) == (2, 0, 2)
    assert data["train_size"] + data["dev_size"] == 2
    assert topics_since(app, length) == ["ExamplesAppended", "Handled"]
    assert sourced(app) == [
        ("e1", {"question": "q1", "context": "c", "answer": "a-e1", "confidence": 0.5}),
        ("e2", {"question": "q2", "context": "c", "answer": "a-e2", "confidence": 0.5}),
    ]


@pytest.mark.usefixtures("ready")
def test_an_execution_is_never_added_twice(app: DspyOps, ctx: Ids) -> None:
    first = promote(app, ctx, "e1", "e1")
    assert (first.data["appended"], first.data["skipped"], first.data["size"]) == (1, 1, 1)
    second = promote(app, ctx, "e1", "e2")
    assert (second.data["appended"], second.data["skipped"], second.data["size"]) == (1, 1, 2)
    # All of them in already: answered, nothing appended.
    length = log_length(app)
    third = promote(app, ctx, "e2", "e1")
    assert third.result_type == "ExecutionsPromoted"
    assert (third.data["appended"], third.data["skipped"], third.data["size"]) == (0, 2, 2)
    assert topics_since(app, length) == ["Handled"]
    assert [source for source, _ in sourced(app)] == ["e1", "e2"]


@pytest.mark.usefixtures("ready")
def test_the_latest_corrected_outputs_win_over_the_executions_own(app: DspyOps, ctx: Ids) -> None:
    corrected(app, ctx, "e1", {"answer": "first fix", "confidence": 0.7})
    corrected(app, ctx, "e1", CORRECTED)
    # Feedback without corrections does not undo them.
    handle(app, RecordFeedback(execution_id="e1", score=0.2), ctx())
    # A failed execution with corrected outputs is a labelled example too.
    corrected(app, ctx, "f1", {"answer": "fixed", "confidence": 0.9})
    outcome = promote(app, ctx, "e1", "f1")
    assert outcome.data["appended"] == 2, outcome.data
    assert sourced(app) == [
        ("e1", {"question": "q1", "context": "c", **CORRECTED}),
        ("f1", {"question": "q3", "context": "c", "answer": "fixed", "confidence": 0.9}),
    ]


@pytest.mark.usefixtures("ready")
def test_unknown_unended_and_uncorrected_failed_executions_are_rejected_at_their_place(
    app: DspyOps, ctx: Ids
) -> None:
    # A request stored alone: the execution has not ended.
    inputs = {"question": "q", "context": "c"}
    meta = ctx("pending").meta()
    app.save(Execution(execution_id="pending", program_id="p", version=1, inputs=inputs, **meta))
    length = log_length(app)
    outcome = promote(app, ctx, "e1", "nope", "f1", "pending")
    assert outcome.result_type == "CommandRejected"
    assert [(e["loc"], e["type"]) for e in outcome.data["errors"]] == [
        (["execution_ids", 1], "not_found"),
        (["execution_ids", 2], "no_outputs"),
        (["execution_ids", 3], "not_ended"),
    ]
    # Nothing was appended, not even the good one.
    assert topics_since(app, length) == ["Handled"]
    assert app.dataset("d").size == 0


@pytest.mark.usefixtures("ready")
def test_an_unknown_dataset_is_rejected(app: DspyOps, ctx: Ids) -> None:
    outcome = promote(app, ctx, "e1", dataset_id="missing")
    assert outcome.result_type == "CommandRejected"
    assert [(e["loc"], e["type"]) for e in outcome.data["errors"]] == [
        (["dataset_id"], "not_found")
    ]


@pytest.mark.usefixtures("ready")
def test_appended_and_promoted_examples_share_the_dataset(app: DspyOps, ctx: Ids) -> None:
    example = {"question": "hand", "context": "c", "answer": "made", "confidence": 1.0}
    handle(app, AppendExamples(dataset_id="d", examples=[example]), ctx())
    promote(app, ctx, "e1")
    assert [source for source, _ in sourced(app)] == [None, "e1"]
    assert app.dataset("d").size == 2


@pytest.mark.usefixtures("ready")
def test_examples_appended_before_sources_were_recorded_still_load(app: DspyOps, ctx: Ids) -> None:
    promote(app, ctx, "e1")
    stored = next(
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("Dataset.ExamplesAppended")
    )
    state = app.mapper.transcoder.decode(stored.state)
    assert (state["class_version"], state["source_execution_ids"]) == (2, ["e1"])
    state["class_version"] = 1
    del state["source_execution_ids"]
    event = restored(app, stored, state)
    assert event.source_execution_ids is None
    # Replayed, such an event appends examples without a source.
    registered = next(
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("Dataset.Registered")
    )
    created: Any = app.mapper.to_domain_event(registered)
    dataset = event.mutate(created.mutate(None))
    assert isinstance(dataset, Dataset)
    assert (dataset.sources, dataset.size) == ([None], 1)


def test_the_command_takes_one_to_ten_thousand_ids() -> None:
    with pytest.raises(ValidationError):
        PromoteExecutions(dataset_id="d", execution_ids=[])
    with pytest.raises(ValidationError):
        PromoteExecutions(dataset_id="d", execution_ids=["e"] * 10_001)
    with pytest.raises(ValidationError):
        PromoteExecutions.model_validate(
            {"dataset_id": "d", "execution_ids": ["e"], "filter": {"program_id": "p"}}
        )


def test_a_size_limit_is_reported_at_the_executions_place() -> None:
    meta = {"command_id": "c", "correlation_id": "c", "actor": None}
    dataset = Dataset.register(dataset_id="d", name="D", examples=[], dev_fraction=0.2, **meta)
    dataset.promote([("e1", {"q": "small"})], **meta)
    huge = {"q": "x" * (MAX_EXAMPLE_BYTES + 1)}
    with pytest.raises(InvalidInput) as caught:
        # e1 is skipped (in already): e2's example is the second appended, the third sent.
        dataset.promote([("e1", {"q": "small"}), ("e3", {"q": "ok"}), ("e2", huge)], **meta)
    assert [(e["loc"], e["type"]) for e in caught.value.errors] == [
        (["execution_ids", 2], "too_large")
    ]
    assert dataset.sources == ["e1"]
