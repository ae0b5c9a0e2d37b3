"""Compiled signatures: DSPy runs them, pydantic validates against them, schemas show bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from functools import partial
from typing import Any, Literal, Optional

import dspy
import pytest
from dspy.utils import DummyLM

from dspyops.signatures import (
    CompiledSignature,
    SignatureError,
    ValidationFailed,
    compile_signature,
)
from dspyops.signatures.dspy_signature import dspy_signature

QA = "question: str, context: str -> answer: str[1, 500], confidence: float[0, 1]"


def failure(fn: Any, data: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as info:
        fn(data)
    json.dumps(info.value.errors)
    return info.value.errors


@pytest.fixture
def qa() -> CompiledSignature:
    return compile_signature(QA, instructions="Answer from the context.")


def test_compiled_parts(qa: CompiledSignature) -> None:
    assert qa.text == QA
    assert qa.input_names == ("question", "context")
    assert qa.output_names == ("answer", "confidence")
    sig = dspy_signature(qa)
    assert issubclass(sig, dspy.Signature)
    assert list(sig.input_fields) == ["question", "context"]
    assert list(sig.output_fields) == ["answer", "confidence"]
    assert sig.instructions == "Answer from the context."


def test_text_is_canonical() -> None:
    assert compile_signature("q:str->a:int|None").text == "q: str -> a: Optional[int]"


def test_predict_with_dummy_lm_gives_typed_outputs(qa: CompiledSignature) -> None:
    lm = DummyLM([{"answer": "Paris", "confidence": "0.5"}])
    with dspy.context(lm=lm):
        pred = dspy.Predict(dspy_signature(qa))(question="Capital?", context="France")
    assert pred.answer == "Paris"
    assert pred.confidence == 0.5
    assert isinstance(pred.confidence, float)
    assert qa.validate_outputs(pred.toDict()) == {"answer": "Paris", "confidence": 0.5}


def test_chain_of_thought_accepts_the_signature(qa: CompiledSignature) -> None:
    lm = DummyLM([{"reasoning": "it is", "answer": "Paris", "confidence": "1"}])
    with dspy.context(lm=lm):
        pred = dspy.ChainOfThought(dspy_signature(qa))(question="Capital?", context="France")
    assert pred.confidence == 1.0


def test_dspy_gets_plain_types_and_bounds_in_descriptions() -> None:
    sig = dspy_signature(
        compile_signature(
            'a: list[dict[str, int]], b: Literal["x", 1] -> c: Optional[float[0, 1]], d: bool',
            descriptions={"c": "how sure"},
        )
    )
    fields = sig.model_fields
    assert fields["a"].annotation == list[dict[str, int]]
    assert fields["b"].annotation == Literal["x", 1]
    assert fields["c"].annotation == Optional[float]  # noqa: UP045
    assert fields["d"].annotation is bool
    assert sig.output_fields["c"].json_schema_extra["desc"] == (
        "how sure (a value from 0 to 1 inclusive)"
    )


def test_default_instructions_come_from_dspy() -> None:
    compiled = compile_signature("q: str -> a: str")
    assert compiled.instructions is None
    assert "`q`" in dspy_signature(compiled).instructions


def test_inputs_are_strict_and_outputs_lax() -> None:
    # A producer's inputs follow their JSON Schema; an LM's outputs are parsed text.
    sig = compile_signature("n: int, x: float, ok: bool, tags: list[str] -> a: int, b: bool")
    lax = {"n": "3", "x": "2.5", "ok": "true", "tags": ["a"]}
    errors = failure(sig.validate_inputs, lax)
    assert sorted(e["loc"][0] for e in errors) == ["n", "ok", "x"]
    assert failure(sig.validate_inputs, {"n": True, "x": 1, "ok": True, "tags": []})[0]["loc"] == [
        "n"
    ]
    assert sig.validate_inputs({"n": 3, "x": 1, "ok": True, "tags": ["a"]}) == {
        "n": 3,
        "x": 1.0,
        "ok": True,
        "tags": ["a"],
    }
    assert sig.validate_outputs({"a": "3", "b": "true"}) == {"a": 3, "b": True}
    assert failure(partial(sig.validate_outputs, strict=True), {"a": "3", "b": True})


def test_bad_values_are_rejected_with_paths() -> None:
    sig = compile_signature("n: int, x: float, m: dict[str, list[int]] -> a: str")
    errors = failure(sig.validate_inputs, {"n": "3.5", "x": "abc", "m": {"k": [1, "z"]}})
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["n"], "int_type"),
        (["x"], "float_type"),
        (["m", "k", 1], "int_type"),
    ]
    assert "input" not in errors[0]


def test_missing_and_extra_fields(qa: CompiledSignature) -> None:
    errors = failure(qa.validate_inputs, {"question": "q", "extra": 1})
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["context"], "missing"),
        (["extra"], "extra_forbidden"),
    ]


def test_not_a_mapping_is_rejected(qa: CompiledSignature) -> None:
    errors = failure(qa.validate_inputs, ["question"])
    assert errors[0]["type"] == "model_type"


def test_output_constraints(qa: CompiledSignature) -> None:
    errors = failure(qa.validate_outputs, {"answer": "", "confidence": 1.5})
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["answer"], "string_too_short"),
        (["confidence"], "less_than_equal"),
    ]
    assert failure(qa.validate_outputs, {"answer": "x" * 501, "confidence": 0})[0]["type"] == (
        "string_too_long"
    )
    assert qa.validate_outputs({"answer": "x", "confidence": "1"}) == {
        "answer": "x",
        "confidence": 1.0,
    }


def test_list_int_and_optional_constraints() -> None:
    sig = compile_signature("q: str -> tags: list[str][0, 2], n: int[1, 3], p: float[0, 1] | None")
    assert sig.validate_outputs({"tags": [], "n": 3}) == {"tags": [], "n": 3, "p": None}
    errors = failure(sig.validate_outputs, {"tags": ["a", "b", "c"], "n": 0, "p": 2})
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["tags"], "too_long"),
        (["n"], "greater_than_equal"),
        (["p"], "less_than_equal"),
    ]


def test_literal_values() -> None:
    sig = compile_signature('q: str -> label: Literal["yes", "no"]')
    assert sig.validate_outputs({"label": "yes"}) == {"label": "yes"}
    assert failure(sig.validate_outputs, {"label": "maybe"})[0]["type"] == "literal_error"


@pytest.mark.parametrize("value", ["nan", "inf", float("nan"), float("-inf")])
def test_non_finite_floats_are_rejected(value: object) -> None:
    sig = compile_signature("q: str -> x: float")
    assert failure(sig.validate_outputs, {"x": value})[0]["loc"] == ["x"]


def test_json_schemas_carry_types_bounds_and_descriptions() -> None:
    sig = compile_signature(
        "question: str, k: int[1, 10] -> answer: str[1, 500], tags: list[str][0, 5], "
        "confidence: Optional[float[0, 1]]",
        descriptions={"question": "what to answer", "confidence": "how sure"},
    )
    inputs = sig.input_json_schema()
    assert inputs["additionalProperties"] is False
    assert inputs["required"] == ["question", "k"]
    assert inputs["properties"]["question"]["description"] == "what to answer"
    assert inputs["properties"]["k"] | {"title": None} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "title": None,
    }
    outputs = sig.output_json_schema()
    assert outputs["required"] == ["answer", "tags"]
    assert outputs["properties"]["answer"]["minLength"] == 1
    assert outputs["properties"]["answer"]["maxLength"] == 500
    assert outputs["properties"]["tags"]["maxItems"] == 5
    assert outputs["properties"]["confidence"]["anyOf"] == [
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "null"},
    ]
    json.dumps(outputs)


def test_descriptions_for_unknown_fields_are_refused() -> None:
    with pytest.raises(SignatureError) as info:
        compile_signature("q: str -> a: str", descriptions={"zz": "x", "q": "ok"})
    assert str(info.value) == "description given for unknown field 'zz'"
    assert info.value.errors() == [
        {
            "loc": ["signature"],
            "msg": "description given for unknown field 'zz'",
            "type": "unknown_field",
        }
    ]


def test_non_string_descriptions_and_instructions_are_refused() -> None:
    with pytest.raises(SignatureError):
        compile_signature("q: str -> a: str", descriptions={"q": ["x"]})  # type: ignore[dict-item]
    with pytest.raises(SignatureError):
        compile_signature("q: str -> a: str", instructions=3)  # type: ignore[arg-type]


def test_parse_errors_surface_from_compile() -> None:
    with pytest.raises(SignatureError, match=r"^column 4: unknown type 'this'$"):
        compile_signature("q: this -> a: str")


def test_compilation_is_cached_and_immutable() -> None:
    first = compile_signature("q: str -> a: str", descriptions={"q": "x"})
    assert compile_signature("q: str -> a: str", descriptions={"q": "x"}) is first
    assert compile_signature("q: str -> a: str", descriptions={"q": "y"}) is not first
    with pytest.raises(AttributeError):
        first.text = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.descriptions["q"] = "changed"  # type: ignore[index]


def test_the_dspy_class_is_built_once_per_compiled_signature() -> None:
    compiled = compile_signature("q: str -> a: str", descriptions={"q": "x"})
    assert dspy_signature(compiled) is dspy_signature(compiled)
    other = compile_signature("q: str -> a: str", descriptions={"q": "y"})
    assert dspy_signature(other) is not dspy_signature(compiled)


def test_signatures_compile_and_validate_without_loading_dspy() -> None:
    # A fresh interpreter: this one has dspy loaded already.
    code = textwrap.dedent(
        """
        import sys
        from dspyops.signatures import ValidationFailed, compile_signature

        sig = compile_signature("q: str -> a: float[0, 1]", descriptions={"a": "how sure"})
        assert sig.validate_inputs({"q": "x"}) == {"q": "x"}
        assert sig.validate_outputs({"a": "0.5"}) == {"a": 0.5}
        try:
            sig.validate_outputs({"a": 2})
        except ValidationFailed:
            pass
        else:
            raise AssertionError("a = 2 passed the bound")
        assert sig.output_json_schema()["properties"]["a"]["maximum"] == 1
        loaded = [m for m in sys.modules if m == "dspy" or m.startswith("dspy.")]
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
