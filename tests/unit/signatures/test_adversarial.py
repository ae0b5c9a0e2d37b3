"""Hostile input: huge or deeply nested text, code where a type goes, unsafe names."""

from __future__ import annotations

import builtins
import contextlib
import importlib
import sys
import time
from typing import Any

import dspy
import pytest
from pydantic import BaseModel

from dspyops.signatures import MAX_SIGNATURE_CHARS, RESERVED_NAMES, SignatureError, parse


def error_of(text: str) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        parse(text)
    return info.value


def test_one_megabyte_fails_fast_with_a_clear_error() -> None:
    text = "q: str -> a: str, " + "x" * 1_000_000
    started = time.perf_counter()
    exc = error_of(text)
    assert time.perf_counter() - started < 0.05
    assert str(exc) == (
        f"column 10001: signature is {len(text)} characters long; the limit is 10000"
    )
    assert exc.issues[0].code == "too_long"


def test_text_at_the_limit_is_parsed() -> None:
    names = [f"f{i}" for i in range(150)]
    body = ", ".join(f"{name}: str" for name in names[1:])
    text = f"{names[0]}: str -> {body}"
    text += " " * (MAX_SIGNATURE_CHARS - len(text))
    assert len(parse(text).outputs) == 149


def test_too_many_fields() -> None:
    text = "q: str -> " + ", ".join(f"f{i}: int" for i in range(250))
    exc = error_of(text)
    assert exc.issues[0].code == "too_many_fields"
    assert str(exc) == f"column {text.index('f199') + 1}: more than 200 fields"


def test_deep_nesting_is_refused_before_recursing() -> None:
    text = "q: " + "list[" * 9 + "str" + "]" * 9 + " -> a: str"
    exc = error_of(text)
    assert str(exc) == "column 48: types are nested deeper than 8 levels"
    assert exc.issues[0].code == "too_deep"


def test_nesting_that_would_overflow_the_stack_is_refused() -> None:
    text = "q: " + "list[" * 1600 + "str" + "]" * 1600 + " -> a: str"
    assert error_of(text).issues[0].code == "too_deep"


def test_unbalanced_brackets_are_refused() -> None:
    assert error_of("q: " + "[" * 5000 + " -> a: str").issues[0].code == "syntax"


@pytest.mark.parametrize(
    ("type_text", "message"),
    [
        ("__import__('os').system('id')", "column 4: unknown type '__import__'"),
        ("this", "column 4: unknown type 'this'"),
        ("antigravity", "column 4: unknown type 'antigravity'"),
        ("os.system", "column 4: unknown type 'os'"),
        ("eval", "column 4: unknown type 'eval'"),
        ("str.__class__", "column 7: unexpected character '.'"),
        ("list[__builtins__]", "column 9: unknown type '__builtins__'"),
        ("dspy.Image", "column 4: unknown type 'dspy'"),
        ("typing.Any", "column 4: unknown type 'typing'"),
        ("lambda: 1", "column 4: unknown type 'lambda'"),
        ("`id`", "column 4: unexpected character '`'"),
        ("str; import os", "column 7: unexpected character ';'"),
        ("str = 0.5", "column 8: unexpected character '='"),
        ("str  # comment", "column 9: unexpected character '#'"),
        ("{'a': 1}", "column 4: unexpected character '{'"),
    ],
)
def test_code_in_types_is_never_evaluated(type_text: str, message: str) -> None:
    before = set(sys.modules)
    exc = error_of(f"q: {type_text} -> a: str")
    assert str(exc) == message
    assert "this" not in set(sys.modules) - before
    assert "antigravity" not in sys.modules


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("__class__", "bad_name"),
        ("__init__", "bad_name"),
        ("_private", "bad_name"),
        ("größe", "bad_name"),
        ("名前", "bad_name"),
        ("café", "bad_name"),
        ("model_config", "bad_name"),
        ("model_fields", "bad_name"),
        ("instructions", "bad_name"),
        ("signature", "bad_name"),
        ("demos", "bad_name"),
        ("lm", "bad_name"),
        ("config", "bad_name"),
        ("reasoning", "bad_name"),
        ("completed", "bad_name"),
        ("keys", "bad_name"),
        ("dict", "bad_name"),
        ("def", "bad_name"),
        ("True", "bad_name"),
    ],
)
def test_unsafe_names_are_refused(name: str, code: str) -> None:
    exc = error_of(f"{name}: str -> a: str")
    assert exc.issues[0].code == code
    assert exc.issues[0].column == 1


def test_unicode_letters_are_allowed_inside_string_literals() -> None:
    field = parse('q: str -> a: Literal["größe", "名前"]').outputs[0]
    assert field.type.values == ("größe", "名前")  # type: ignore[union-attr]


def test_unicode_digits_are_not_numbers() -> None:
    assert str(error_of("q: str -> a: int[0, ٣]")) == "column 21: unexpected character '٣'"


def test_control_characters_are_reported_visibly() -> None:
    assert str(error_of("q: str\x00 -> a: str")) == "column 7: unexpected character '\\x00'"


def test_duplicate_across_sides_is_refused() -> None:
    exc = error_of("text: str -> text: str")
    assert str(exc) == "column 14: duplicate field name 'text'"


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_reserved_names_cover_the_installed_libraries() -> None:
    # Fails after an upgrade that adds attributes, so the rule is revisited on purpose.
    clashing = (
        _public(BaseModel)
        | _public(dspy.Signature)
        | _public(dspy.Prediction)
        | _public(dspy.Example)
    )
    uncovered = {n for n in clashing if not n.startswith("model_")} - RESERVED_NAMES
    assert uncovered == set()


@pytest.mark.parametrize(
    "text",
    [
        "q: str -> a: Literal[" + ", ".join(str(i) for i in range(1600)) + "]",
        "q: str -> " + ", ".join(f"f{i}: list[dict[str, Optional[int]]]" for i in range(199)),
        "q: str -> a: " + "Optional[" * 8 + "str" + "]" * 8 + " " * 9000,
        "q: str -> a: str" + " |None" * 1400,
    ],
)
def test_worst_cases_at_the_size_limit_stay_fast(text: str) -> None:
    text = text[:MAX_SIGNATURE_CHARS]
    started = time.perf_counter()
    with contextlib.suppress(SignatureError):
        parse(text)
    assert time.perf_counter() - started < 0.5


def test_parsing_imports_and_evaluates_nothing() -> None:
    # Spies record instead of raising: pytest itself imports while reporting a failure.
    parse("q: str -> a: str")  # warm up anything pydantic builds lazily
    calls: list[str] = []
    targets = [(builtins, "__import__"), (importlib, "import_module"), (builtins, "eval")]
    originals = [getattr(owner, name) for owner, name in targets]

    def spy(name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name}{args[:1]!r}")
            return original(*args, **kwargs)

        return wrapper

    texts = [
        "q: this -> a: str",
        "q: __import__('os') -> a: str",
        "q: os.path -> a: str",
        "__class__: str -> a: str",
        'q: list[dict[str, Literal["a", 1]]] -> a: Optional[float[0, 1]]',
        "q: str -> a: int[0, 1e999]",
    ]
    for (owner, name), original in zip(targets, originals, strict=True):
        setattr(owner, name, spy(name, original))
    try:
        for text in texts:
            with contextlib.suppress(SignatureError):
                parse(text)
    finally:
        for (owner, name), original in zip(targets, originals, strict=True):
            setattr(owner, name, original)
    assert calls == []
