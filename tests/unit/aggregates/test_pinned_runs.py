"""Pinned runs: a run records the dataset version it took its examples from and takes
exactly those again when it resumes, however the dataset grew meanwhile."""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates.app import (
    DspyOps,
    EvaluationPlan,
    GatePlan,
    OptimizationPlan,
    evaluations,
    handle,
    optimizations,
)
from dspyops.aggregates.app.gates import gate_run_id
from dspyops.aggregates.errors import NotFound
from dspyops.events.commands import AppendExamples, EvaluateProgram, OptimizeProgram
from dspyops.events.results import Provenance
from tests.unit.aggregates.test_application import (
    STATE,
    Ids,
    add_dataset,
    register,
    restored,
)
from tests.unit.aggregates.test_gates import deployed_v1, gated


def grow(app: DspyOps, ctx: Ids, n: int = 30, dataset_id: str = "d") -> None:
    examples = [
        {"question": f"new{i}", "context": "c", "answer": f"b{i}", "confidence": 1.0}
        for i in range(n)
    ]
    outcome = handle(app, AppendExamples(dataset_id=dataset_id, examples=examples), ctx())
    assert outcome.result_type == "ExamplesAppended", outcome


def test_a_dataset_version_is_its_aggregate_version(app: DspyOps, ctx: Ids) -> None:
    add_dataset(app, ctx, n=20)
    grow(app, ctx, n=5)
    assert app.dataset("d").version == 2
    first = app.dataset_at("d", 1)
    assert (first.version, first.size) == (1, 20)
    assert app.dataset_at("d", 2).examples[:20] == first.examples
    for version in (0, 3):
        with pytest.raises(NotFound) as missing:
            app.dataset_at("d", version)
        assert missing.value.errors[0]["loc"] == ["version"]
    with pytest.raises(NotFound):
        app.dataset_at("nope", 1)


def test_a_resumed_optimization_takes_the_examples_it_was_requested_with(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    command = OptimizeProgram(program_id="p", dataset_id="d")
    first = handle(app, command, ctx("o1"))
    assert isinstance(first, OptimizationPlan)
    assert first.dataset_version == app.optimization("o1").dataset_version == 1
    grow(app, ctx)
    assert app.dataset("d").size == 50

    resumed = handle(app, command, ctx("o1"))

    assert isinstance(resumed, OptimizationPlan)
    assert resumed.resumed
    assert (resumed.dataset_version, resumed.trainset, resumed.devset) == (
        1,
        first.trainset,
        first.devset,
    )
    later = handle(app, command, ctx("o2"))
    assert isinstance(later, OptimizationPlan)
    assert later.dataset_version == 2
    assert len(later.trainset) + len(later.devset) == 50


def test_a_resumed_evaluation_takes_the_examples_it_was_requested_with(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    command = EvaluateProgram(program_id="p", dataset_id="d")
    first = handle(app, command, ctx("e1"))
    assert isinstance(first, EvaluationPlan)
    grow(app, ctx)

    resumed = handle(app, command, ctx("e1"))

    assert isinstance(resumed, EvaluationPlan)
    assert resumed.resumed
    assert (resumed.dataset_version, resumed.devset) == (1, first.devset)
    assert app.evaluation("e1").dataset_version == 1


def test_a_resumed_gate_scores_both_versions_on_the_examples_it_began_with(
    app: DspyOps, ctx: Ids
) -> None:
    deployed_v1(app, ctx)
    plan = handle(app, gated(split="all"), ctx("deploy-1"))
    assert isinstance(plan, GatePlan)
    grow(app, ctx)

    resumed = handle(app, gated(split="all"), ctx("deploy-1"))

    assert isinstance(resumed, GatePlan)
    assert [run.devset for run in resumed.runs] == [run.devset for run in plan.runs]
    assert [len(run.devset) for run in resumed.runs] == [20, 20]
    for role in ("candidate", "current"):
        assert app.evaluation(gate_run_id("deploy-1", role)).dataset_version == 1


@pytest.mark.parametrize(
    ("command", "run_type", "class_version"),
    [
        (OptimizeProgram(program_id="p", dataset_id="d"), "Optimization.Requested", 3),
        (EvaluateProgram(program_id="p", dataset_id="d"), "Evaluation.Requested", 4),
    ],
)
def test_a_run_requested_before_pinning_loads_and_takes_the_current_examples(
    app: DspyOps, ctx: Ids, command: Any, run_type: str, class_version: int
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    handle(app, command, ctx("r1"))
    stored = next(
        n for n in app.recorder.select_notifications(1, 1000) if n.topic.endswith(run_type)
    )
    state = app.mapper.transcoder.decode(stored.state)
    # Two class versions later (the judge came after pinning).
    assert (state["class_version"], state["dataset_version"]) == (class_version + 2, 1)
    # As that class version wrote it: no dataset version, no judge.
    state["class_version"] = class_version
    del state["dataset_version"], state["judge"]
    old = restored(app, stored, state)
    assert old.dataset_version is None
    assert old.mutate(None).dataset_version is None


def test_an_optimized_version_names_the_dataset_version_that_made_it(
    app: DspyOps, ctx: Ids
) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    assert isinstance(
        handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx("o1")), OptimizationPlan
    )
    grow(app, ctx)
    outcome = optimizations.complete_optimization(
        app, "o1", state=STATE, baseline_score=0.2, optimized_score=0.8
    )
    assert outcome.result_type == "OptimizationCompleted"
    program = app.program("p")
    assert [v["dataset_version"] for v in program.versions] == [None, 1]
    stored = next(
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("Program.Optimized")
    )
    state = app.mapper.transcoder.decode(stored.state)
    assert (state["class_version"], state["dataset_version"]) == (4, 1)
    # As class version 3 wrote it: the version's dataset version is unknown.
    state["class_version"] = 3
    del state["dataset_version"]
    assert restored(app, stored, state).dataset_version is None
    # A snapshot taken before pinned runs (class version 6) loads with it unknown too.
    aggregate_id = app.program("p").id
    app.take_snapshot(aggregate_id)
    assert app.snapshots is not None
    snap = app.snapshots.recorder.select_events(aggregate_id, desc=True, limit=1)[0]
    snapshot = app.mapper.transcoder.decode(snap.state)
    snapshot["state"]["class_version"] = 6
    for version in snapshot["state"]["versions"]:
        del version["dataset_version"]
    loaded = restored(app, snap, snapshot).mutate(None)
    assert [v["dataset_version"] for v in loaded.versions] == [None, None]


def test_runs_completed_before_provenance_load_without_it(app: DspyOps, ctx: Ids) -> None:
    register(app, ctx)
    add_dataset(app, ctx)
    handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx("o1"))
    handle(app, EvaluateProgram(program_id="p", dataset_id="d"), ctx("e1"))
    provenance = Provenance(dspy_version="3.4.1", dspyops_version="0.1.0", lm_profiles=[])
    optimizations.complete_optimization(
        app, "o1", state=STATE, baseline_score=0.2, optimized_score=0.8, provenance=provenance
    )
    evaluations.complete_evaluation(app, "e1", 0.5, [], provenance=provenance)
    assert app.optimization("o1").provenance == app.evaluation("e1").provenance
    assert app.evaluation("e1").provenance == provenance.model_dump(mode="json")
    for run_type, class_version in (("Optimization.Completed", 2), ("Evaluation.Completed", 3)):
        notifications = app.recorder.select_notifications(1, 1000)
        stored = next(n for n in notifications if n.topic.endswith(run_type))
        state = app.mapper.transcoder.decode(stored.state)
        assert state["class_version"] == class_version
        # As the previous class version wrote it: no provenance.
        state["class_version"] = class_version - 1
        del state["provenance"]
        assert restored(app, stored, state).provenance is None
