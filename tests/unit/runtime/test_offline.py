"""The offline LM: parses for any signature, deterministic, labelled, no network."""

from __future__ import annotations

import enum
import json
from typing import Any, Literal

import dspy
import pydantic
import pytest
from dspy import lm15

from dspyops.runtime.executor import execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.offline import OFFLINE_LABEL, OfflineLM, placeholder
from dspyops.runtime.redaction import Redactor


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Place(pydantic.BaseModel):
    city: str
    population: int


# Failures told as the worker tells them, with nothing configured to redact.
ERRORS = LMErrors("test", Redactor())


def rich_signature() -> type[dspy.Signature]:
    return dspy.make_signature(
        {
            "question": (str, dspy.InputField()),
            "answer": (str, dspy.OutputField()),
            "confidence": (float, dspy.OutputField()),
            "verified": (bool, dspy.OutputField()),
            "sources": (list[str], dspy.OutputField()),
            "kind": (Literal["fact", "opinion"], dspy.OutputField()),
            "count": (int, dspy.OutputField()),
            "note": (str | None, dspy.OutputField()),
            "scores": (dict[str, float], dspy.OutputField()),
        },
        "Answer with evidence.",
    )


def assert_labelled(outputs: dict[str, Any]) -> None:
    assert outputs["answer"].startswith(OFFLINE_LABEL)
    assert outputs["note"].startswith(OFFLINE_LABEL)
    assert all(s.startswith(OFFLINE_LABEL) for s in outputs["sources"])


@pytest.mark.parametrize("kind", [dspy.Predict, dspy.ChainOfThought])
async def test_outputs_parse_for_every_field_type(kind: type[dspy.Module]) -> None:
    outcome = await execute_program(
        kind(rich_signature()), {"question": "q"}, OfflineLM(), timeout_s=5, errors=ERRORS
    )

    assert outcome.ok, outcome.error_message
    outputs = outcome.outputs or {}
    assert_labelled(outputs)
    assert outputs["confidence"] == 0.0
    assert outputs["verified"] is False
    assert outputs["kind"] == "fact"
    assert outputs["count"] == 0
    assert outputs["scores"] == {"key": 0.0}
    assert outcome.model == "offline"
    assert outcome.lm_calls == 1
    assert outcome.usage.total_tokens == 0
    if kind is dspy.ChainOfThought:
        assert outputs["reasoning"].startswith(OFFLINE_LABEL)


async def test_json_adapter_gets_a_json_reply() -> None:
    lm = OfflineLM()
    with dspy.context(adapter=dspy.JSONAdapter()):
        outcome = await execute_program(
            dspy.Predict(rich_signature()), {"question": "q"}, lm, timeout_s=5, errors=ERRORS
        )

    assert outcome.ok, outcome.error_message
    assert_labelled(outcome.outputs or {})
    assert json.loads(lm.history[-1]["outputs"][0])["kind"] == "fact"


async def test_replies_are_deterministic() -> None:
    module = dspy.Predict(rich_signature())
    first = await execute_program(
        module, {"question": "a"}, OfflineLM(), timeout_s=5, errors=ERRORS
    )
    second = await execute_program(
        module, {"question": "b"}, OfflineLM(), timeout_s=5, errors=ERRORS
    )
    assert first.outputs == second.outputs


def test_synchronous_call_works_too() -> None:
    with dspy.context(lm=OfflineLM()):
        prediction = dspy.Predict(rich_signature())(question="q")
    assert prediction.answer.startswith(OFFLINE_LABEL)


def test_without_a_predict_it_reads_the_fields_from_the_prompt() -> None:
    system = (
        "Your input fields are:\n1. `question` (str)\nYour output fields are:\n"
        "1. `answer` (str)\n...\n[[ ## question ## ]]\n{question}\n\n"
        "[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
    )
    request = lm15.Request(model="offline", system=system, messages=(lm15.Message.user("hi"),))

    reply = OfflineLM()(request).text

    assert "[[ ## answer ## ]]\n[offline] answer" in reply
    assert "[[ ## question ## ]]" not in reply
    assert reply.endswith("[[ ## completed ## ]]")


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, "[offline] f"),
        (int, 0),
        (float, 0.0),
        (bool, False),
        (Literal["x", "y"], "x"),
        (int | None, 0),
        (list[int], [0]),
        (list, ["[offline] f"]),
        (tuple[str, ...], ["[offline] f"]),
        (dict, {"key": "[offline] f"}),
        (Colour, "red"),
        (Place, {"city": "[offline] city", "population": 0}),
        (Any, "[offline] f"),
    ],
)
def test_placeholder_values(annotation: Any, expected: Any) -> None:
    assert placeholder(annotation, "f") == expected


def test_pydantic_and_enum_outputs_validate() -> None:
    signature = dspy.make_signature(
        {
            "q": (str, dspy.InputField()),
            "place": (Place, dspy.OutputField()),
            "colour": (Colour, dspy.OutputField()),
        },
        "Find it.",
    )
    with dspy.context(lm=OfflineLM()):
        prediction = dspy.Predict(signature)(q="q")
    assert prediction.place == Place(city="[offline] city", population=0)
    assert prediction.colour is Colour.RED
