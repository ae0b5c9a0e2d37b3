"""Valid signatures: every type form, bounds, and the canonical text they render to."""

from __future__ import annotations

import pytest

from dspyops.signatures import (
    Constraint,
    DictType,
    FieldSpec,
    ListType,
    LiteralType,
    OptionalType,
    ParsedSignature,
    ScalarType,
    parse,
    render,
)

STR = ScalarType("str")
INT = ScalarType("int")
FLOAT = ScalarType("float")
BOOL = ScalarType("bool")


def test_issue_example_parses_into_fields_by_side() -> None:
    sig = parse("question: str, context: str -> answer: str, confidence: float")
    assert sig == ParsedSignature(
        inputs=(FieldSpec("question", STR, "input"), FieldSpec("context", STR, "input")),
        outputs=(FieldSpec("answer", STR, "output"), FieldSpec("confidence", FLOAT, "output")),
    )


@pytest.mark.parametrize(
    ("type_text", "spec"),
    [
        ("str", STR),
        ("int", INT),
        ("float", FLOAT),
        ("bool", BOOL),
        ("list[str]", ListType(STR)),
        ("dict[str, int]", DictType(INT)),
        ("Optional[str]", OptionalType(STR)),
        ("str | None", OptionalType(STR)),
        ("None | str", OptionalType(STR)),
        ("Optional[str | None]", OptionalType(STR)),
        ('Literal["a", "b"]', LiteralType(("a", "b"))),
        ("Literal['a', 1, -2]", LiteralType(("a", 1, -2))),
        ('Literal["1", 1]', LiteralType(("1", 1))),
        ("list[dict[str, Optional[list[int]]]]", ListType(DictType(OptionalType(ListType(INT))))),
        (
            'dict[str, list[Literal["x"]] | None]',
            DictType(OptionalType(ListType(LiteralType(("x",))))),
        ),
    ],
)
def test_type_forms(type_text: str, spec: object) -> None:
    sig = parse(f"q: str -> a: {type_text}")
    assert sig.outputs[0].type == spec
    assert sig.outputs[0].constraint is None


@pytest.mark.parametrize(
    ("type_text", "spec", "constraint"),
    [
        ("float[0, 1]", FLOAT, Constraint("range", 0, 1)),
        ("float[-0.5, 2.5e3]", FLOAT, Constraint("range", -0.5, 2500.0)),
        ("int[-3, 3]", INT, Constraint("range", -3, 3)),
        ("str[1, 500]", STR, Constraint("length", 1, 500)),
        ("list[str][0, 5]", ListType(STR), Constraint("length", 0, 5)),
        ("Optional[float[0, 1]]", OptionalType(FLOAT), Constraint("range", 0, 1)),
        ("float[0, 1] | None", OptionalType(FLOAT), Constraint("range", 0, 1)),
        ("int[2, 2]", INT, Constraint("range", 2, 2)),
    ],
)
def test_bounds(type_text: str, spec: object, constraint: Constraint) -> None:
    field = parse(f"q: str -> a: {type_text}").outputs[0]
    assert field.type == spec
    assert field.constraint == constraint


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (
            "question:str,context:str->answer:str,confidence:float",
            "question: str, context: str -> answer: str, confidence: float",
        ),
        ("  q :\tstr\n ,\n c: int  ->\n a : bool ", "q: str, c: int -> a: bool"),
        ("q: str -> a: str | None", "q: str -> a: Optional[str]"),
        ("q: str -> a: float[0,1]|None", "q: str -> a: Optional[float[0, 1]]"),
        (
            "q: str -> a: Literal['x', \"it's\", 'a\\\\b']",
            'q: str -> a: Literal["x", "it\'s", "a\\\\b"]',
        ),
        ('q: str -> a: Literal["say \\"hi\\""]', 'q: str -> a: Literal["say \\"hi\\""]'),
        ("q: str -> a: float[1e-3, 1E2]", "q: str -> a: float[0.001, 100.0]"),
        ("q: str -> a: Literal['é', 'ü']", 'q: str -> a: Literal["é", "ü"]'),
    ],
)
def test_render_is_canonical(text: str, canonical: str) -> None:
    rendered = render(parse(text))
    assert rendered == canonical
    assert render(parse(rendered)) == rendered


def test_literal_string_values_are_unescaped() -> None:
    field = parse('q: str -> a: Literal["say \\"hi\\"", \'a\\\\b\']').outputs[0]
    assert field.type == LiteralType(('say "hi"', "a\\b"))


def test_soft_keywords_and_type_words_are_fine_names() -> None:
    sig = parse("match: str, type: int, str: str -> list: list[str], case: bool")
    assert [f.name for f in sig.fields] == ["match", "type", "str", "list", "case"]


def test_names_may_use_digits_and_underscores() -> None:
    sig = parse("q_1: str, Q2x: str -> answer_text_3: str")
    assert [f.name for f in sig.fields] == ["q_1", "Q2x", "answer_text_3"]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    deep = "list[" * 8 + "str" + "]" * 8
    assert render(parse(f"q: {deep} -> a: str")) == f"q: {deep} -> a: str"
