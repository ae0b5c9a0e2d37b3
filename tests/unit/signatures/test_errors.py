"""Invalid signatures: the exact message, column and code a user sees."""

from __future__ import annotations

import json
import pickle

import pytest

from dspyops.signatures import SignatureError, SignatureIssue, ValidationFailed, parse


def error_of(text: str) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        parse(text)
    return info.value


def test_issue_example_message_and_pydantic_style_errors() -> None:
    text = "question: str, context: str -> answer: strr"
    exc = error_of(text)
    assert str(exc) == "column 40: unknown type 'strr'"
    assert exc.issues == [
        SignatureIssue(column=40, message="unknown type 'strr'", code="unknown_type")
    ]
    assert exc.errors() == [
        {"loc": ["signature"], "msg": "column 40: unknown type 'strr'", "type": "unknown_type"}
    ]
    json.dumps(exc.errors())
    assert isinstance(exc, ValueError)


@pytest.mark.parametrize(
    ("text", "message", "code"),
    [
        ("q: str, c: strr -> a: str", "column 12: unknown type 'strr'", "unknown_type"),
        ("q: List[str] -> a: str", "column 4: unknown type 'List'", "unknown_type"),
        ("q: string -> a: str", "column 4: unknown type 'string'", "unknown_type"),
        ("q: str", "column 7: expected '->' between inputs and outputs", "syntax"),
        ("", "column 1: expected a field name but found end of text", "syntax"),
        ("q: str -> ", "column 11: no output fields after '->'", "empty_side"),
        ("-> a: str", "column 1: no input fields before '->'", "empty_side"),
        ("q: str -> a: str -> b: str", "column 18: only one '->' is allowed", "syntax"),
        (
            "q str -> a: str",
            "column 3: expected ':' after the field name but found 'str'",
            "syntax",
        ),
        ("q: -> a: str", "column 4: expected a type but found '->'", "syntax"),
        ("q: str, -> a: str", "column 9: expected a field name but found '->'", "syntax"),
        ("q: str c: str -> a: str", "column 8: expected ',' or '->' but found 'c'", "syntax"),
        ("q: str -> a: str b: str", "column 18: expected ',' but found 'b'", "syntax"),
        ("q: list[str -> a: str", "column 13: expected ']' but found '->'", "syntax"),
        ("q: list -> a: str", "column 9: expected '[' but found '->'", "syntax"),
        ("q: dict[int, str] -> a: str", "column 9: dict keys must be str", "bad_type"),
        ("q: dict[str] -> a: str", "column 12: expected ',' but found ']'", "syntax"),
        (
            "q: str -> a: str | int",
            "column 20: only 'T | None' unions are supported",
            "unsupported_union",
        ),
        ("q: str -> a: None", "column 14: a type cannot be only None", "bad_type"),
        (
            "q: str -> a: Literal[]",
            "column 22: expected a string or integer Literal value but found ']'",
            "syntax",
        ),
        (
            "q: str -> a: Literal[1.5]",
            "column 22: expected a string or integer Literal value but found '1.5'",
            "bad_type",
        ),
        ('q: str -> a: Literal["x", "x"]', 'column 27: duplicate Literal value "x"', "bad_type"),
        ('q: str -> a: Literal["x]', "column 22: unterminated string literal", "syntax"),
        (
            'q: str -> a: Literal["\\n"]',
            "column 23: only \\\\, \\\" and \\' escapes are allowed in strings",
            "syntax",
        ),
        (
            "q: str -> a: bool[0, 1]",
            "column 18: bounds cannot follow bool; they apply to int, float, str or list",
            "bad_constraint",
        ),
        (
            'q: str -> a: Literal["x"][0, 1]',
            'column 26: bounds cannot follow Literal["x"]; they apply to int, float, str or list',
            "bad_constraint",
        ),
        (
            "q: str -> a: Optional[str][0, 1]",
            "column 27: bounds cannot follow Optional[str]; they apply to int, float, str or list",
            "bad_constraint",
        ),
        (
            "q: str -> a: list[str[1, 2]]",
            "column 22: bounds are only allowed on a field's own type",
            "bad_constraint",
        ),
        (
            "q: str -> a: dict[str, int[0, 1]]",
            "column 27: bounds are only allowed on a field's own type",
            "bad_constraint",
        ),
        (
            "q: str -> a: float[1, 0]",
            "column 19: lower bound 1 is greater than upper bound 0",
            "bad_constraint",
        ),
        (
            "q: str -> a: int[0, 1.5]",
            "column 17: upper bound of int must be an integer",
            "bad_constraint",
        ),
        (
            "q: str -> a: str[0.5, 2]",
            "column 17: lower bound of str must be an integer",
            "bad_constraint",
        ),
        (
            "q: str -> a: str[-1, 2]",
            "column 17: length bounds cannot be negative",
            "bad_constraint",
        ),
        ("q: str -> a: str[1]", "column 19: expected ',' but found ']'", "syntax"),
        ("q: str -> a: str[a, 2]", "column 18: expected a number but found 'a'", "syntax"),
        (
            "q: str -> a: str[1, 2][3, 4]",
            "column 23: a type can have only one set of bounds",
            "bad_constraint",
        ),
        ("q: str -> a: float[0, 1e999]", "column 23: number 1e999 is not finite", "bad_number"),
        (
            "q: str -> a: int[0, " + "9" * 40 + "]",
            "column 21: number is longer than 32 characters",
            "bad_number",
        ),
    ],
)
def test_syntax_and_type_errors(text: str, message: str, code: str) -> None:
    exc = error_of(text)
    assert str(exc) == message
    assert [issue.code for issue in exc.issues] == [code]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("class: str -> a: str", "column 1: field name 'class' is a Python keyword"),
        ("None: str -> a: str", "column 1: field name 'None' is a Python keyword"),
        ("_q: str -> a: str", "column 1: field name '_q' must start with a letter"),
        (
            "q: str -> model_name: str",
            "column 11: field name 'model_name' is reserved "
            "(names starting with 'model_' belong to pydantic)",
        ),
        (
            "q: str -> signature: str",
            "column 11: field name 'signature' is reserved "
            "(it clashes with a DSPy or pydantic attribute)",
        ),
        ("q" * 65 + ": str -> a: str", "column 1: field name is longer than 64 characters"),
    ],
)
def test_bad_names(text: str, message: str) -> None:
    exc = error_of(text)
    assert str(exc) == message
    assert [issue.code for issue in exc.issues] == ["bad_name"]


def test_duplicates_within_and_across_sides_are_all_reported() -> None:
    exc = error_of("q: str, q: int, a: str -> a: str, b: int")
    assert str(exc) == "column 9: duplicate field name 'q'; column 27: duplicate field name 'a'"
    assert [issue.code for issue in exc.issues] == ["duplicate_field", "duplicate_field"]
    assert [error["type"] for error in exc.errors()] == ["duplicate_field", "duplicate_field"]


def test_name_issues_are_kept_when_a_later_syntax_error_stops_the_parse() -> None:
    exc = error_of("class: str, q: strr -> a: str")
    assert (
        str(exc)
        == "column 1: field name 'class' is a Python keyword; column 16: unknown type 'strr'"
    )
    assert [issue.code for issue in exc.issues] == ["bad_name", "unknown_type"]


def test_columns_count_newlines_as_one_character() -> None:
    assert str(error_of("q: str,\nc: strr -> a: str")) == "column 12: unknown type 'strr'"


def test_non_text_is_refused() -> None:
    exc = error_of(b"q: str -> a: str")  # type: ignore[arg-type]
    assert str(exc) == "signature must be a string"
    assert exc.issues[0].code == "not_text"
    assert exc.issues[0].column == 0


def test_errors_survive_pickling_between_processes() -> None:
    exc = error_of("q: strr -> a: str")
    again = pickle.loads(pickle.dumps(exc))
    assert again.issues == exc.issues
    assert str(again) == str(exc)
    failed = ValidationFailed([{"loc": ["x"], "msg": "bad", "type": "t"}])
    copy = pickle.loads(pickle.dumps(failed))
    assert copy.errors == failed.errors
    assert str(copy) == "x: bad"
