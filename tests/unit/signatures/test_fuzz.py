"""Fuzz: any text either parses or raises SignatureError with a column inside the text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dspyops.signatures import SignatureError, parse, render

VALID = 'question: str, context: list[str][0, 5] -> answer: Literal["a", 1], p: float[0, 1]'
# Tokens of the grammar and near-misses, so random text reaches deep into the parser.
pieces = st.sampled_from(
    [
        "q", "a", "str", "int", "float", "bool", "list", "dict", "Optional", "Literal",
        "None", "->", "-", ">", ":", ",", "[", "]", "|", " ", "\n", '"x"', "'y'", "1", "-2",
        "0.5", "1e3", "__class__", "(", ")", ".", "é", "\\", '"',
    ]
)  # fmt: skip


def check(text: str) -> None:
    try:
        sig = parse(text)
    except SignatureError as exc:
        error = exc
    else:
        assert render(parse(render(sig))) == render(sig)
        return
    assert error.issues
    for issue in error.issues:
        assert 0 <= issue.column <= len(text) + 1
        assert str(issue) in str(error)


@settings(max_examples=150, deadline=None)
@given(st.lists(pieces, max_size=40).map("".join))
def test_token_soup(text: str) -> None:
    check(text)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(VALID)), st.integers(0, 5), st.text(max_size=3))
def test_mutated_valid_signature(at: int, cut: int, insert: str) -> None:
    check(VALID[:at] + insert + VALID[at + cut :])
