"""Pipelines checked at registration: each problem named at its step and binding."""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates.app import Checks, CommandContext, DspyOps, handle, in_memory_env
from dspyops.aggregates.errors import InvalidInput
from dspyops.aggregates.pipeline import Checkers, check_pipeline
from dspyops.events.commands import RegisterProgram
from dspyops.events.steps import Step
from dspyops.signatures import compile_signature, parse
from dspyops.signatures.spec import TypeSpec
from dspyops.signatures.types import assignable

PROGRAM = compile_signature("question: str -> answer: str, sources: list[str]")
RAG: list[dict[str, Any]] = [
    {"name": "query", "kind": "Predict", "signature": "question: str -> query: str"},
    {
        "name": "retrieve",
        "kind": "Retrieve",
        "corpus": "docs",
        "bindings": {"query": "query.query"},
    },
    {
        "name": "answer",
        "kind": "ChainOfThought",
        "signature": "question: str, context: list[str] -> answer: str, sources: list[str]",
        "bindings": {"context": "retrieve.passages"},
    },
]
CHECKERS = Checkers(
    corpus_exists=lambda corpus_id: corpus_id == "docs",
    tool_errors=lambda names: [
        {"loc": [i], "msg": f"unknown tool {n!r}", "type": "unknown_tool"}
        for i, n in enumerate(names)
        if n not in {"arithmetic", "corpus_search"}
    ],
    metric_errors=lambda name: (
        [] if name == "exact_match" else [{"msg": "unknown metric", "type": "unknown_metric"}]
    ),
)


def parse_type(text: str) -> TypeSpec:
    return parse(f"x: {text} -> y: str").inputs[0].type


def check(steps: list[dict[str, Any]], outputs: dict[str, str] | None = None) -> Any:
    return check_pipeline(PROGRAM, [Step.model_validate(s) for s in steps], outputs, CHECKERS)


def errors_of(steps: list[dict[str, Any]], outputs: dict[str, str] | None = None) -> list[dict]:
    with pytest.raises(InvalidInput) as info:
        check(steps, outputs)
    return info.value.errors


def test_a_rag_pipeline_is_stored_normalized() -> None:
    steps, outputs = check(RAG)
    assert [s["name"] for s in steps] == ["query", "retrieve", "answer"]
    assert steps[0]["bindings"] == {"question": "question"}
    assert steps[1]["signature"] == "query: str -> passages: list[str], document_ids: list[str]"
    assert (steps[1]["corpus"], steps[1]["k"]) == ("docs", 5)
    assert steps[2]["bindings"] == {"question": "question", "context": "retrieve.passages"}
    assert outputs == {"answer": "answer.answer", "sources": "answer.sources"}


def test_an_input_bound_to_a_later_step_is_a_cycle() -> None:
    steps = [dict(RAG[0], bindings={"question": "answer.answer"}), *RAG[1:]]
    (error,) = errors_of(steps)
    assert error["loc"] == ["steps", 0, "bindings", "question"]
    assert "no earlier step is named 'answer'" in error["msg"]
    assert "cycle" in error["msg"]


def test_a_type_mismatch_names_both_types() -> None:
    steps: list[dict[str, Any]] = [
        *RAG[:2],
        dict(RAG[2], signature="question: str, context: str -> answer: str, sources: list[str]"),
    ]
    (error,) = errors_of(steps)
    assert error["loc"] == ["steps", 2, "bindings", "context"]
    assert error["msg"] == "retrieve.passages is list[str], but answer.context takes str"
    assert error["type"] == "type_mismatch"


def test_every_problem_is_reported_with_its_place() -> None:
    steps: list[dict[str, Any]] = [
        {"name": "a", "signature": "question: str -> x: int"},
        {"name": "a", "signature": "nope: str -> y: str"},
        {"name": "r", "kind": "Retrieve", "k": 3},
        {
            "name": "agent",
            "kind": "ReAct",
            "signature": "question: str -> answer: str",
            "tools": ["arithmetic", "shell"],
        },
        {
            "name": "best",
            "kind": "BestOfN",
            "signature": "question: str -> answer: str",
            "reward": "vibes",
        },
        {"name": "p", "signature": "question: str -> answer: str", "k": 2},
    ]
    locs = {tuple(e["loc"]): e["type"] for e in errors_of(steps, {"answer": "a.x", "bogus": "a.x"})}
    assert locs == {
        ("steps", 1, "name"): "duplicate",
        ("steps", 1, "bindings", "nope"): "unbound",
        ("steps", 2, "corpus"): "missing",
        ("steps", 2, "bindings", "query"): "unbound",
        ("steps", 3, "tools", 1): "unknown_tool",
        ("steps", 4, "reward"): "unknown_metric",
        ("steps", 5, "k"): "not_allowed",
        ("outputs", "bogus"): "unknown_field",
        ("outputs", "answer"): "type_mismatch",
        ("outputs", "sources"): "unbound",
    }


@pytest.mark.parametrize(
    ("source", "target", "fits"),
    [
        ("list[str]", "list[str]", True),
        ("str", "Optional[str]", True),
        ("Optional[str]", "str", False),
        ("int", "float", True),
        ("float", "int", False),
        ('Literal["a", "b"]', "str", True),
        ('Literal["a", "b"]', 'Literal["a", "b", "c"]', True),
        ('Literal["a", "z"]', 'Literal["a", "b"]', False),
        ("list[int]", "list[float]", True),
        ("dict[str, int]", "dict[str, str]", False),
        ("list[str]", "str", False),
    ],
)
def test_types_fit_as_the_target_validates(source: str, target: str, fits: bool) -> None:
    assert assignable(parse_type(source), parse_type(target)) is fits


def test_registering_a_pipeline_records_its_steps_and_too_many_steps_are_refused() -> None:
    app = DspyOps(in_memory_env(), checks=Checks(tools=CHECKERS.tool_errors))
    ctx = CommandContext(command_id="c", correlation_id="c")
    steps = [{"name": "a", "signature": "question: str -> answer: str, sources: list[str]"}]
    command = RegisterProgram.model_validate(
        {"program_id": "p", "name": "P", "signature": PROGRAM.text, "steps": steps}
    )
    outcome = handle(app, command, ctx)
    assert (outcome.result_type, outcome.data["module"]) == ("ProgramRegistered", "Pipeline")
    program = app.program("p")
    assert program.steps is not None
    assert program.steps[0]["bindings"] == {"question": "question"}
    assert program.outputs == {"answer": "a.answer", "sources": "a.sources"}
    with pytest.raises(ValueError, match="at most 32"):
        RegisterProgram.model_validate(
            {"name": "P", "signature": PROGRAM.text, "steps": [steps[0]] * 33}
        )
