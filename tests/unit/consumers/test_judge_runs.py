"""Runs scored by a judge program: the judge answers on its own LM profile, and each of
its calls is recorded as an execution of the judge program."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dspyops.aggregates.app import (
    Checks,
    CommandContext,
    DspyOps,
    EvaluationPlan,
    ExecutionPlan,
    OptimizationPlan,
    handle,
)
from dspyops.aggregates.app.judges import sampled
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.consumers.evaluations import EvaluationJobs
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.judges import judge_execution_id
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.runs import RunJobs
from dspyops.events.commands import (
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
    SetOnlineEvaluation,
)
from dspyops.events.envelope import command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.optimizers import validate_optimization
from dspyops.runtime.redaction import Redactor
from tests.support.judges import EXAMPLES, GRADER, QA, TwoProfiles


def _ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=f"corr-{command_id}")


def _app() -> DspyOps:
    app = DspyOps(env=in_memory_env(), checks=Checks(optimization=validate_optimization))
    handle(app, RegisterProgram(program_id="qa", name="qa", signature=QA), _ctx("r1"))
    grader = RegisterProgram(program_id="grader", name="grader", signature=GRADER, lm="judge")
    handle(app, grader, _ctx("r2"))
    dataset = RegisterDataset(dataset_id="d", name="d", examples=EXAMPLES, dev_fraction=0.5)
    handle(app, dataset, _ctx("r3"))
    return app


def _requested(app: DspyOps, execution_id: str) -> dict[str, Any]:
    """The stored Requested event of an execution, as recorded."""
    uuid = app.execution(execution_id)
    assert uuid is not None
    stored = app.recorder.select_events(uuid.id, limit=1)[0]
    state: dict[str, Any] = app.mapper.transcoder.decode(stored.state)
    return state


async def test_an_evaluation_scored_by_a_judge_records_the_judges_executions() -> None:
    app, profiles = _app(), TwoProfiles()
    jobs = EvaluationJobs(
        app=app,
        profiles=profiles,
        pool=ThreadPoolExecutor(1),
        poll_interval_s=0.01,
        redactor=Redactor(),
    )
    command = EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:grader")
    plan = handle(app, command, _ctx("e1"))
    assert isinstance(plan, EvaluationPlan), plan

    outcome = await jobs.evaluate(command_envelope("EvaluateProgram", {}), plan, _ctx("e1"))

    assert outcome.result_type == "EvaluationCompleted", outcome
    # The judge says 5 (1.0) for a right sum and 1 (0.0) for "42".
    scores = [example["score"] for example in app.evaluation("e1").per_example]
    assert outcome.data["score"] == round(sum(scores) / len(scores), 4)
    assert set(scores) == {0.0, 1.0}
    calls = [app.execution(judge_execution_id("e1", n)) for n in range(1, len(scores) + 2)]
    assert calls[-1] is None  # one call per example
    for call in calls[:-1]:
        assert call is not None
        assert (call.program_id, call.version_used, call.status) == ("grader", 1, "succeeded")
        assert call.route == {
            "alias": None,
            "arm": None,
            "bucket": None,
            "reason": "judge of evaluation e1",
        }
        assert call.cost_usd == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)
        assert call.outputs is not None
        assert call.outputs["rationale"] in ("matches", "wrong sum")
        requested = _requested(app, call.execution_id)
        assert (requested["actor"], requested["correlation_id"]) == ("judge:e1", "corr-e1")


async def test_an_optimization_with_a_judge_records_its_calls_too() -> None:
    app, profiles = _app(), TwoProfiles()
    jobs = RunJobs(
        app=app,
        profiles=profiles,
        topics=Topics("t."),
        publish=_ignore,
        pool=ThreadPoolExecutor(1),
        poll_interval_s=0.01,
        redactor=Redactor(),
    )
    data: dict[str, Any] = {
        "program_id": "qa",
        "dataset_id": "d",
        "optimizer": "LabeledFewShot",
        "metric": "judge:grader",
    }
    envelope = command_envelope("OptimizeProgram", data, subject="qa")
    plan = handle(app, OptimizeProgram.model_validate(data), _ctx("o1"))
    assert isinstance(plan, OptimizationPlan), plan

    outcome = await jobs.optimize(envelope, plan, _ctx("o1"))

    assert outcome.result_type == "OptimizationCompleted", outcome
    first = app.execution(judge_execution_id("o1", 1))
    assert first is not None
    assert first.route is not None
    assert first.route["reason"] == "judge of optimization o1"


async def _ignore(messages: Any) -> None:
    return None


async def test_a_judge_whose_lm_profile_this_worker_lacks_fails_the_run() -> None:
    app, profiles = _app(), TwoProfiles()
    grader = RegisterProgram(program_id="far", name="far", signature=GRADER, lm="elsewhere")
    handle(app, grader, _ctx("r4"))
    jobs = EvaluationJobs(
        app=app, profiles=profiles, pool=ThreadPoolExecutor(1), redactor=Redactor()
    )
    plan = handle(
        app, EvaluateProgram(program_id="qa", dataset_id="d", metric="judge:far"), _ctx("e2")
    )
    assert isinstance(plan, EvaluationPlan), plan

    outcome = await jobs.evaluate(command_envelope("EvaluateProgram", {}), plan, _ctx("e2"))

    assert outcome.result_type == "EvaluationFailed", outcome
    assert outcome.data["error"]["code"] == "unknown_lm_profile"
    assert "judge" in outcome.data["error"]["message"]
    assert app.execution(judge_execution_id("e2", 1)) is None


ONLINE_GRADER = "question: str, answer: str -> score: int[1, 5], rationale: str"


def _events_of(app: DspyOps, execution_id: str) -> list[dict[str, Any]]:
    found = app.execution(execution_id)
    assert found is not None
    return [
        {"topic": stored.topic, **app.mapper.transcoder.decode(stored.state)}
        for stored in app.recorder.select_events(found.id)
    ]


async def test_online_evaluation_judges_picked_executions_as_feedback() -> None:
    app, profiles = _app(), TwoProfiles()
    online = RegisterProgram(program_id="watcher", name="w", signature=ONLINE_GRADER, lm="judge")
    handle(app, online, _ctx("r5"))
    set_online = SetOnlineEvaluation(program_id="qa", judge="watcher", sample_percent=50)
    assert handle(app, set_online, _ctx("s1")).result_type == "OnlineEvaluationSet"
    jobs = ExecutionJobs(app, profiles, ModuleCache(), redactor=Redactor())
    ids = [f"x{n}" for n in range(12)]
    picked = [i for i in ids if sampled(i, 50)]
    assert 0 < len(picked) < len(ids)

    for execution_id in ids:
        command = ExecuteProgram(
            program_id="qa", inputs={"question": "What is 0 plus 1?"}, execution_id=execution_id
        )
        plan = handle(app, command, _ctx(f"c-{execution_id}"))
        assert isinstance(plan, ExecutionPlan), plan
        outcome = await jobs.run(
            command_envelope("ExecuteProgram", {}), plan, _ctx(f"c-{execution_id}")
        )
        assert outcome.result_type == "ExecutionSucceeded"
    await jobs.judged()

    for execution_id in ids:
        execution = app.execution(execution_id)
        assert execution is not None
        judged = app.execution(f"{execution_id}:judge")
        if execution_id not in picked:
            assert (execution.feedback_count, judged) == (0, None)
            continue
        assert judged is not None
        assert (judged.program_id, judged.status) == ("watcher", "succeeded")
        assert judged.inputs == {"question": "What is 0 plus 1?", "answer": "1"}
        assert judged.route is not None
        assert judged.route["reason"] == f"online judge of execution {execution_id}"
        assert execution.feedback_count == 1
        feedback = _events_of(app, execution_id)[-1]
        assert feedback["topic"].endswith("FeedbackRecorded")
        # No reference online: the scripted grader says 1 of 5 (0 of 0..1), "wrong sum".
        assert (feedback["score"], feedback["comment"]) == (0.0, "wrong sum")
        assert feedback["actor"] == "judge:watcher"
