"""A judge program as a metric (runtime.judge): its inputs, its score, its feedback."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from dspy.lm15 import Request
from dspy.utils import DummyLM

from dspyops.runtime.evaluate import score_program, to_examples
from dspyops.runtime.judge import Judge, JudgeMetric, bound_inputs, normalised
from dspyops.runtime.lm_errors import JUDGE_FAILED, LMErrors
from dspyops.runtime.modules import build_module
from dspyops.runtime.optimizers import compile_program, parse_config
from dspyops.runtime.redaction import Redactor
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature
from tests.support.judges import EXAMPLES
from tests.support.judges import grade as grader_reply
from tests.support.openai_server import chat_reply
from tests.support.optimization import prompt_text
from tests.support.scripted_lm import ScriptedLM

GRADER = "question: str, answer: str, reference: str -> score: int[1, 5], rationale: str"
BINDINGS = {
    "question": ["input", "question"],
    "answer": ["output", "answer"],
    "reference": ["label", "answer"],
}
GOLD = dspy.Example(question="2+2?", answer="4").with_inputs("question")


def _judge(answers: list[dict[str, Any]]) -> Judge:
    program = build_module("Predict", dspy_signature(compile_signature(GRADER)), None)
    return Judge(
        name="judge:grader",
        program=program,
        lm=DummyLM(answers),
        errors=LMErrors("judge", Redactor()),
        bindings=BINDINGS,
        low=1.0,
        high=5.0,
        rationale="rationale",
        pass_threshold=0.5,
    )


def test_a_score_is_normalised_from_its_declared_range() -> None:
    assert normalised(3, 1.0, 5.0) == 0.5
    assert normalised("5", 1.0, 5.0) == 1.0
    for bad in (0, 6, True, "n/a", float("nan"), None):
        assert normalised(bad, 1.0, 5.0) is None


def test_judge_inputs_come_from_the_prediction_and_the_example() -> None:
    inputs = bound_inputs(BINDINGS, {"question": "q", "answer": "gold"}, {"answer": "said"})
    assert inputs == {"question": "q", "answer": "said", "reference": "gold"}


def test_the_judge_scores_each_call_is_kept_and_gepa_gets_the_rationale() -> None:
    judge = _judge([{"score": "4", "rationale": "right sum, terse"}])
    metric = JudgeMetric(judge)
    pred = dspy.Prediction(answer="4")

    assert metric(GOLD, pred) == 0.75
    # GEPA asks again for the same trajectory's feedback: the same verdict, no new call.
    feedback = metric(GOLD, pred, None, "predict", [])
    assert isinstance(feedback, dspy.Prediction)
    assert (feedback.score, feedback.feedback) == (0.75, "right sum, terse")
    # Bootstrapping asks "keep this demo?": the score against pass_threshold.
    assert metric(GOLD, pred, trace=[]) is True

    [call] = judge.calls
    assert call.inputs == {"question": "2+2?", "answer": "4", "reference": "4"}
    assert call.outcome.ok
    assert call.outcome.outputs == {"score": 4, "rationale": "right sum, terse"}


@pytest.mark.parametrize("answer", [{"score": "9", "rationale": "x"}])
def test_a_score_out_of_range_errors_the_example_not_scores_it(answer: dict[str, Any]) -> None:
    judge = _judge([answer])
    program = build_module(
        "Predict", dspy_signature(compile_signature("question: str -> answer: str")), None
    )
    devset = to_examples([{"question": "2+2?", "answer": "4"}], ["question"])

    with dspy.context(lm=DummyLM([{"answer": "4"}])):
        scored = score_program(program, devset, JudgeMetric(judge))

    assert scored.errored == 1
    assert scored.per_example[0]["error"] == JUDGE_FAILED
    assert len(judge.calls) == 1  # the call was made (and billed): the worker records it


def test_gepa_reflects_on_the_judges_rationale() -> None:
    """GEPA, given a judge metric, shows its reflection LM the judge's rationale as each
    example's feedback."""
    reflections: list[str] = []

    def student_and_reflection(request: Request) -> str:
        text = prompt_text(request)
        if "examples_with_feedback" in text:
            reflections.append(text)
            return '{"new_instruction": "Add the two numbers; answer with the sum."}'
        return chat_reply(answer="42")

    judge = Judge(
        name="judge:grader",
        program=build_module("Predict", dspy_signature(compile_signature(GRADER)), None),
        lm=ScriptedLM(grader_reply),
        errors=LMErrors("judge", Redactor()),
        bindings=BINDINGS,
        low=1.0,
        high=5.0,
        rationale="rationale",
    )
    lm = ScriptedLM(student_and_reflection)
    program = build_module(
        "Predict", dspy_signature(compile_signature("question: str -> answer: str")), None
    )
    train = to_examples(EXAMPLES, ["question"])

    with dspy.context(lm=lm):
        compile_program(
            "GEPA",
            parse_config("GEPA", {"max_metric_calls": 12}),
            program,
            metric=JudgeMetric(judge),
            trainset=train,
            devset=train,
            lm=lm,
        )

    assert reflections
    assert '"Feedback": "wrong sum"' in reflections[0]
    # Every answer is "42": one judge call per example, however often GEPA asked.
    assert len(judge.calls) == len(EXAMPLES)
