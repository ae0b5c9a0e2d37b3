"""Text made by an LM or a library is stored only in a form PostgreSQL can hold.

Commands with NUL or lone surrogates are refused by the codec; these cover the text that
does not come from a command: outputs, error messages, per-example outputs, demos.
"""

from __future__ import annotations

import json

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    EvaluationPlan,
    OptimizationPlan,
    evaluations,
    handle,
    in_memory_env,
    optimizations,
)
from dspyops.events.commands import (
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
)
from dspyops.events.results import ErrorInfo
from dspyops.events.text import refused_text
from tests.support.executions import complete

BAD = "a\x00b\ud800c"


def ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id)


def app_with_program() -> DspyOps:
    app = DspyOps(in_memory_env())
    register = RegisterProgram(program_id="p", name="P", signature="question: str -> answer: str")
    handle(app, register, ctx("r"))
    examples = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]
    handle(app, RegisterDataset(dataset_id="d", name="D", examples=examples), ctx("d"))
    return app


def refused_in_store(app: DspyOps) -> list[object]:
    """Refused text in any stored event's state: what the read side would be given."""
    notifications = app.recorder.select_notifications(1, 10_000)
    return [found for n in notifications for found in refused_text(json.loads(n.state))]


def test_an_output_holding_a_nul_fails_the_execution_as_invalid() -> None:
    app = app_with_program()
    plan = handle(app, ExecuteProgram(program_id="p", inputs={"question": "q"}), ctx("x"))
    outcome = complete(app, plan, ctx("x"), outputs={"answer": BAD})
    assert outcome.result_type == "ExecutionFailed"
    assert outcome.data["error"]["code"] == "output_invalid"
    assert outcome.data["error"]["details"][0]["loc"] == ["outputs", "answer"]
    assert refused_in_store(app) == []


def test_error_messages_and_run_reports_are_stored_cleaned() -> None:
    app = app_with_program()
    plan = handle(app, ExecuteProgram(program_id="p", inputs={"question": "q"}), ctx("x"))
    failed = complete(app, plan, ctx("x"), error=ErrorInfo(code="lm_error", message=BAD))
    assert failed.data["error"]["message"] == "a\ufffdb\ufffdc"
    run = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx("o"))
    assert isinstance(run, OptimizationPlan)
    assert optimizations.fail_optimization(app, run.optimization_id, "lm_error", BAD).data["error"][
        "message"
    ] == ("a\ufffdb\ufffdc")
    run = handle(app, OptimizeProgram(program_id="p", dataset_id="d"), ctx("o2"))
    assert isinstance(run, OptimizationPlan)
    state = {"predict": {"demos": [{"question": BAD, "answer": "x"}]}}
    optimizations.complete_optimization(
        app, run.optimization_id, state=state, baseline_score=0.1, optimized_score=0.2
    )
    assert app.program("p").versions[-1]["state"] == {
        "predict": {"demos": [{"question": "a\ufffdb\ufffdc", "answer": "x"}]}
    }
    evaluation = handle(app, EvaluateProgram(program_id="p", dataset_id="d"), ctx("e"))
    assert isinstance(evaluation, EvaluationPlan)
    per_example = [{"index": 0, "score": 0.0, "outputs": {"answer": BAD}}]
    evaluations.complete_evaluation(app, evaluation.evaluation_id, 0.0, per_example)
    assert app.evaluation(evaluation.evaluation_id).per_example[0]["outputs"] == {
        "answer": "a\ufffdb\ufffdc"
    }
    assert refused_in_store(app) == []


def test_an_invalid_output_keyed_by_the_lm_is_stored_cleaned() -> None:
    app = DspyOps(in_memory_env())
    register = RegisterProgram(
        program_id="p", name="P", signature="question: str -> scores: dict[str, int]"
    )
    handle(app, register, ctx("r"))
    plan = handle(app, ExecuteProgram(program_id="p", inputs={"question": "q"}), ctx("x"))
    outcome = complete(app, plan, ctx("x"), outputs={"scores": {"a\x00": "nope"}})
    assert outcome.data["error"]["code"] == "output_invalid"
    assert refused_in_store(app) == []
