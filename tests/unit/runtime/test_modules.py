"""build_module: module kinds, and saved state that loads fully or not at all."""

from __future__ import annotations

import copy
import json
from typing import Any

import dspy
import pytest
from dspy.utils import DummyLM

from dspyops.runtime.executor import execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.modules import (
    MODULE_KINDS,
    StateMismatch,
    UnknownModuleKind,
    build_module,
    load_state,
    state_problems,
)
from dspyops.runtime.redaction import Redactor

# Failures told as the worker tells them, with nothing configured to redact.
ERRORS = LMErrors("test", Redactor())


def qa_signature() -> type[dspy.Signature]:
    return dspy.make_signature(
        {
            "question": (str, dspy.InputField()),
            "answer": (str, dspy.OutputField()),
            "confidence": (float, dspy.OutputField()),
        },
        "Answer the question.",
    )


def other_signature() -> type[dspy.Signature]:
    return dspy.make_signature(
        {"text": (str, dspy.InputField()), "summary": (str, dspy.OutputField())}, "Summarise."
    )


def optimized_state(kind: str) -> dict[str, Any]:
    """What an optimizer leaves behind: demos and new instructions, as stored JSON."""
    module = build_module(kind, qa_signature())
    for _, predictor in module.named_predictors():
        demo = {"question": "Capital of Italy?", "answer": "Rome", "confidence": 0.95}
        if kind == "ChainOfThought":
            demo["reasoning"] = "Rome is the capital."
        predictor.demos = [dspy.Example(**demo, augmented=True)]
        predictor.signature = predictor.signature.with_instructions("Answer tersely.")
    return json.loads(json.dumps(module.dump_state()))


def test_module_kinds_are_single_signature_modules() -> None:
    assert set(MODULE_KINDS) == {"Predict", "ChainOfThought"}
    assert isinstance(build_module("Predict", qa_signature()), dspy.Predict)
    assert isinstance(build_module("ChainOfThought", qa_signature()), dspy.ChainOfThought)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownModuleKind, match="ReAct"):
        build_module("ReAct", qa_signature())


@pytest.mark.parametrize("kind", ["Predict", "ChainOfThought"])
def test_a_module_accepts_its_own_fresh_state(kind: str) -> None:
    module = build_module(kind, qa_signature())
    assert state_problems(module, json.loads(json.dumps(module.dump_state()))) == []


@pytest.mark.parametrize("kind", ["Predict", "ChainOfThought"])
def test_saved_state_round_trips(kind: str) -> None:
    state = optimized_state(kind)

    module = build_module(kind, qa_signature(), state)

    assert json.loads(json.dumps(module.dump_state())) == state
    [(_, predictor)] = module.named_predictors()
    assert predictor.signature.instructions == "Answer tersely."
    assert predictor.demos[0]["answer"] == "Rome"


async def test_loaded_demos_reach_the_prompt() -> None:
    module = build_module("Predict", qa_signature(), optimized_state("Predict"))
    lm = DummyLM([{"answer": "Paris", "confidence": 0.9}])

    outcome = await execute_program(
        module, {"question": "Capital of France?"}, lm, timeout_s=5, errors=ERRORS
    )

    assert outcome.ok, outcome.error_message
    prompt = json.dumps(lm.history[-1]["messages"])
    assert "Capital of Italy?" in prompt
    assert "Rome" in prompt
    assert "Answer tersely." in prompt


def problems_for(kind: str, state: Any, signature: type[dspy.Signature] | None = None) -> str:
    with pytest.raises(StateMismatch) as caught:
        build_module(kind, signature or qa_signature(), state)
    assert caught.value.problems
    return str(caught.value)


def test_state_of_another_kind_is_refused() -> None:
    message = problems_for("Predict", optimized_state("ChainOfThought"))
    assert "missing key demos" in message
    assert "unknown key predict" in message

    message = problems_for("ChainOfThought", optimized_state("Predict"))
    assert "missing state for predictor 'predict'" in message
    assert "unknown predictor 'demos'" in message


def test_state_of_another_signature_is_refused() -> None:
    state = optimized_state("Predict")
    message = problems_for("Predict", state, other_signature())
    assert "has 3 entries, the signature has 2" in message
    assert "fields not in the signature: ['answer', 'confidence', 'question']" in message


def test_partial_state_is_refused() -> None:
    state = optimized_state("Predict")
    del state["signature"]
    assert "missing key signature" in problems_for("Predict", state)

    state = optimized_state("Predict")
    state["signature"]["fields"].pop()
    assert "has 2 entries" in problems_for("Predict", state)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.update(lm={"model": "openai/gpt-4o", "api_base": "http://evil"}), "lm must"),
        (lambda s: s.update(forward="not an attribute to set"), "unknown key forward"),
        (lambda s: s.update(demos="not a list"), "demos must be a list"),
        (lambda s: s["demos"].append(["not", "an", "object"]), "demos[1] must be an object"),
        (lambda s: s["signature"].update(instructions=7), "instructions must be a string"),
        (lambda s: s["signature"]["fields"][0].update(prefix=None), "fields[0] must be"),
        (lambda s: s["signature"].update(extra="x"), "exactly the keys"),
    ],
)
def test_malformed_state_is_refused(change: Any, expected: str) -> None:
    state = optimized_state("Predict")
    change(state)
    assert expected in problems_for("Predict", state)


def test_not_an_object_is_refused() -> None:
    assert "must be an object" in problems_for("Predict", ["demos"])


def test_refused_load_leaves_the_module_untouched() -> None:
    module = build_module("Predict", qa_signature(), optimized_state("Predict"))
    before = copy.deepcopy(module.dump_state())
    bad = optimized_state("Predict")
    bad["demos"] = [{"question": "q", "answer": "a", "smuggled": 1}]
    bad["signature"]["instructions"] = "changed"
    del bad["traces"]

    with pytest.raises(StateMismatch):
        load_state(module, bad)

    assert module.dump_state() == before
