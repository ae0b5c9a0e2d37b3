"""Tokenizer for signature text.

Hand-written so that nothing in the text is ever evaluated, imported or looked up:
every token is one of a handful of shapes and everything else is an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from dspyops.signatures.errors import SignatureError

TokenKind: TypeAlias = Literal["ident", "number", "string", "punct", "eof"]

# Longer literals buy nothing and `int("9" * 5000)` is slow or refused by CPython.
MAX_NUMBER_CHARS = 32
_PUNCT = frozenset(":,[]|")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    column: int
    value: str | int | float | None = None

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of text"
        return repr(self.text)


def tokenize(text: str) -> Iterator[Token]:
    """Tokens on demand, so the parser reports the first problem in reading order;
    after the text ends it yields the end-of-text token for ever."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "-" and text.startswith("->", i):
            yield Token("punct", "->", i + 1)
            i += 2
        elif ch in _PUNCT:
            yield Token("punct", ch, i + 1)
            i += 1
        elif (ch.isascii() and ch.isdigit()) or (ch == "-" and _is_digit(text[i + 1 : i + 2])):
            token, i = _number(text, i)
            yield token
        elif ch in "\"'":
            token, i = _string(text, i)
            yield token
        elif ch == "_" or ch.isalpha():
            # Unicode letters are read here too, so that a non-ASCII name is reported as
            # a bad name rather than as a stray character in the middle of a word.
            j = i + 1
            while j < n and (text[j] == "_" or text[j].isalnum()):
                j += 1
            yield Token("ident", text[i:j], i + 1)
            i = j
        else:
            raise SignatureError.single(i + 1, f"unexpected character {ch!r}", "syntax")
    end = Token("eof", "", n + 1)
    while True:
        yield end


def _is_digit(ch: str) -> bool:
    return ch.isascii() and ch.isdigit()


def _digits(text: str, j: int) -> int:
    while j < len(text) and _is_digit(text[j]):
        j += 1
    return j


def _number(text: str, start: int) -> tuple[Token, int]:
    j = start + 1 if text[start] == "-" else start
    j = _digits(text, j)
    is_float = False
    if text[j : j + 1] == "." and _is_digit(text[j + 1 : j + 2]):
        is_float = True
        j = _digits(text, j + 1)
    if text[j : j + 1] in ("e", "E"):
        k = j + 1
        if text[k : k + 1] in ("+", "-"):
            k += 1
        if _is_digit(text[k : k + 1]):
            is_float = True
            j = _digits(text, k)
    raw = text[start:j]
    if len(raw) > MAX_NUMBER_CHARS:
        raise SignatureError.single(
            start + 1, f"number is longer than {MAX_NUMBER_CHARS} characters", "bad_number"
        )
    value: int | float = float(raw) if is_float else int(raw)
    if isinstance(value, float) and not math.isfinite(value):
        raise SignatureError.single(start + 1, f"number {raw} is not finite", "bad_number")
    return Token("number", raw, start + 1, value), j


def _string(text: str, start: int) -> tuple[Token, int]:
    quote = text[start]
    out: list[str] = []
    j = start + 1
    while j < len(text):
        ch = text[j]
        if ch == quote:
            return Token("string", text[start : j + 1], start + 1, "".join(out)), j + 1
        if ch in "\r\n":
            break
        if ch == "\\":
            nxt = text[j + 1 : j + 2]
            if nxt not in _ESCAPES:
                raise SignatureError.single(
                    j + 1, "only \\\\, \\\" and \\' escapes are allowed in strings", "syntax"
                )
            out.append(_ESCAPES[nxt])
            j += 2
            continue
        out.append(ch)
        j += 1
    raise SignatureError.single(start + 1, "unterminated string literal", "syntax")
