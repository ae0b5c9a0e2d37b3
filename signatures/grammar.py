"""Recursive-descent parser for the native signature syntax (grammar: docs/signatures.md).

The parser only ever compares tokens against a fixed vocabulary: no `eval`, no
`importlib`, and the text is never handed to `dspy.Signature(str)`, which imports
unknown type names.

This module is long because it is the whole grammar in one recursive-descent parser,
each rule a method next to the error messages it gives: split, the grammar would be
read across files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from dspyops.signatures.errors import SignatureError, SignatureIssue
from dspyops.signatures.names import name_problem
from dspyops.signatures.render import render_number, render_type
from dspyops.signatures.spec import (
    Constraint,
    DictType,
    FieldSpec,
    ListType,
    LiteralType,
    LiteralValue,
    OptionalType,
    ParsedSignature,
    ScalarType,
    TypeSpec,
)
from dspyops.signatures.tokens import Token, tokenize

MAX_SIGNATURE_CHARS = 10_000
MAX_DEPTH = 8
MAX_FIELDS = 200

_SCALARS = ("str", "int", "float", "bool")
_TYPE_NAMES = frozenset({*_SCALARS, "list", "dict", "Optional", "Literal"})
Side = Literal["input", "output"]


@dataclass(frozen=True)
class _Typed:
    """A parsed type with the bounds that were written on it (if any)."""

    spec: TypeSpec
    constraint: Constraint | None = None


def parse(text: str) -> ParsedSignature:
    """Parse signature text; raises SignatureError naming the problem and its column."""
    if not isinstance(text, str):
        raise SignatureError.single(0, "signature must be a string", "not_text")
    if len(text) > MAX_SIGNATURE_CHARS:
        raise SignatureError.single(
            MAX_SIGNATURE_CHARS + 1,
            f"signature is {len(text)} characters long; the limit is {MAX_SIGNATURE_CHARS}",
            "too_long",
        )
    return _Parser(tokenize(text)).signature()


def _by_column(issue: SignatureIssue) -> int:
    return issue.column


def make_optional(spec: TypeSpec) -> TypeSpec:
    # Optional[Optional[T]] means the same as Optional[T]; one form keeps render stable.
    return spec if isinstance(spec, OptionalType) else OptionalType(spec)


class _Parser:
    def __init__(self, tokens: Iterator[Token]) -> None:
        self.tokens = tokens
        # Name problems do not stop parsing, so one error report can list them all.
        self.issues: list[SignatureIssue] = []
        self.seen: set[str] = set()
        self.count = 0
        self.tok = self.next_token()

    # -- token helpers -------------------------------------------------------------

    def is_punct(self, text: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == text

    def advance(self) -> Token:
        token = self.tok
        self.tok = self.next_token()
        return token

    def next_token(self) -> Token:
        try:
            return next(self.tokens)
        except SignatureError as exc:
            raise SignatureError(sorted([*self.issues, *exc.issues], key=_by_column)) from None

    def fail(self, token: Token, message: str, code: str) -> SignatureError:
        issue = SignatureIssue(column=token.column, message=message, code=code)
        return SignatureError(sorted([*self.issues, issue], key=_by_column))

    def expect(self, text: str, what: str | None = None) -> Token:
        if not self.is_punct(text):
            wanted = what or repr(text)
            raise self.fail(
                self.tok, f"expected {wanted} but found {self.tok.describe()}", "syntax"
            )
        return self.advance()

    # -- signature and fields ------------------------------------------------------

    def signature(self) -> ParsedSignature:
        if self.is_punct("->"):
            raise self.fail(self.tok, "no input fields before '->'", "empty_side")
        inputs = self.field_list("input")
        if self.tok.kind == "eof":
            raise self.fail(self.tok, "expected '->' between inputs and outputs", "syntax")
        self.expect("->", "',' or '->'")
        if self.tok.kind == "eof":
            raise self.fail(self.tok, "no output fields after '->'", "empty_side")
        outputs = self.field_list("output")
        if self.tok.kind != "eof":
            if self.is_punct("->"):
                raise self.fail(self.tok, "only one '->' is allowed", "syntax")
            raise self.fail(self.tok, f"expected ',' but found {self.tok.describe()}", "syntax")
        if self.issues:
            raise SignatureError(self.issues)
        return ParsedSignature(inputs=inputs, outputs=outputs)

    def field_list(self, side: Side) -> tuple[FieldSpec, ...]:
        fields = [self.field(side)]
        while self.is_punct(","):
            self.advance()
            fields.append(self.field(side))
        return tuple(fields)

    def field(self, side: Side) -> FieldSpec:
        token = self.tok
        if token.kind != "ident":
            raise self.fail(token, f"expected a field name but found {token.describe()}", "syntax")
        self.check_name(token)
        self.advance()
        self.expect(":", "':' after the field name")
        typed = self.type_expr(depth=0, bounds_allowed=True)
        return FieldSpec(name=token.text, type=typed.spec, side=side, constraint=typed.constraint)

    def check_name(self, token: Token) -> None:
        self.count += 1
        if self.count > MAX_FIELDS:
            raise self.fail(token, f"more than {MAX_FIELDS} fields", "too_many_fields")
        problem = name_problem(token.text)
        if problem is not None:
            self.issues.append(
                SignatureIssue(column=token.column, message=problem, code="bad_name")
            )
        elif token.text in self.seen:
            self.issues.append(
                SignatureIssue(
                    column=token.column,
                    message=f"duplicate field name {token.text!r}",
                    code="duplicate_field",
                )
            )
        self.seen.add(token.text)

    # -- types -----------------------------------------------------------------------

    def type_expr(self, depth: int, bounds_allowed: bool) -> _Typed:
        """`T`, `T | None` or `None | T`: the only unions the grammar has."""
        start = self.tok
        parts: list[_Typed] = []
        nullable = False
        while True:
            if self.tok.kind == "ident" and self.tok.text == "None":
                self.advance()
                nullable = True
            else:
                if parts:
                    raise self.fail(
                        self.tok, "only 'T | None' unions are supported", "unsupported_union"
                    )
                parts.append(self.primary(depth, bounds_allowed))
            if not self.is_punct("|"):
                break
            self.advance()
        if not parts:
            raise self.fail(start, "a type cannot be only None", "bad_type")
        typed = parts[0]
        if nullable:
            return _Typed(make_optional(typed.spec), typed.constraint)
        return typed

    def primary(self, depth: int, bounds_allowed: bool) -> _Typed:
        token = self.tok
        if token.kind != "ident":
            raise self.fail(token, f"expected a type but found {token.describe()}", "syntax")
        name = token.text
        if name not in _TYPE_NAMES:
            # Checked before reading on, so `__import__('os')` is reported as the unknown
            # type it is rather than as the stray '(' after it.
            raise self.fail(token, f"unknown type {name!r}", "unknown_type")
        self.advance()
        spec: TypeSpec
        if name in _SCALARS:
            spec = ScalarType(name)  # type: ignore[arg-type]
        elif name == "list":
            self.open_bracket(depth)
            spec = ListType(self.type_expr(depth + 1, bounds_allowed=False).spec)
            self.expect("]")
        elif name == "dict":
            self.open_bracket(depth)
            key = self.tok
            if not (key.kind == "ident" and key.text == "str"):
                raise self.fail(key, "dict keys must be str", "bad_type")
            self.advance()
            self.expect(",")
            spec = DictType(self.type_expr(depth + 1, bounds_allowed=False).spec)
            self.expect("]")
        elif name == "Optional":
            self.open_bracket(depth)
            inner = self.type_expr(depth + 1, bounds_allowed)
            self.expect("]")
            return self.no_bounds_after(_Typed(make_optional(inner.spec), inner.constraint))
        else:
            self.open_bracket(depth)
            spec = LiteralType(self.literal_values())
            self.expect("]")
        if not self.is_punct("["):
            return _Typed(spec)
        if not bounds_allowed:
            raise self.fail(
                self.tok, "bounds are only allowed on a field's own type", "bad_constraint"
            )
        constraint = self.bounds(spec)
        if self.is_punct("["):
            raise self.fail(self.tok, "a type can have only one set of bounds", "bad_constraint")
        return _Typed(spec, constraint)

    def no_bounds_after(self, typed: _Typed) -> _Typed:
        if self.is_punct("["):
            raise self.fail(
                self.tok,
                f"bounds cannot follow {render_type(typed.spec)}; "
                "they apply to int, float, str or list",
                "bad_constraint",
            )
        return typed

    def open_bracket(self, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise self.fail(
                self.tok, f"types are nested deeper than {MAX_DEPTH} levels", "too_deep"
            )
        self.expect("[")

    def literal_values(self) -> tuple[LiteralValue, ...]:
        values: list[LiteralValue] = []
        # Keyed by type as well, because Literal["1", 1] has two distinct values.
        seen: set[tuple[type, LiteralValue]] = set()
        while True:
            token = self.tok
            value = token.value
            if not (token.kind == "string" or (token.kind == "number" and isinstance(value, int))):
                raise self.fail(
                    token,
                    f"expected a string or integer Literal value but found {token.describe()}",
                    "bad_type" if token.kind == "number" else "syntax",
                )
            assert isinstance(value, str | int)
            if (type(value), value) in seen:
                raise self.fail(token, f"duplicate Literal value {token.text}", "bad_type")
            seen.add((type(value), value))
            values.append(value)
            self.advance()
            if not self.is_punct(","):
                return tuple(values)
            self.advance()

    # -- bounds ----------------------------------------------------------------------

    def bounds(self, spec: TypeSpec) -> Constraint:
        opening = self.expect("[")
        kind = self.bound_kind(spec, opening)
        low = self.bound_number()
        self.expect(",")
        high = self.bound_number()
        self.expect("]")
        if kind == "length" or spec == ScalarType("int"):
            for value, where in ((low, "lower"), (high, "upper")):
                if not isinstance(value, int):
                    raise self.fail(
                        opening,
                        f"{where} bound of {render_type(spec)} must be an integer",
                        "bad_constraint",
                    )
        if kind == "length" and low < 0:
            raise self.fail(opening, "length bounds cannot be negative", "bad_constraint")
        if low > high:
            raise self.fail(
                opening,
                f"lower bound {render_number(low)} is greater than "
                f"upper bound {render_number(high)}",
                "bad_constraint",
            )
        return Constraint(kind=kind, low=low, high=high)

    def bound_kind(self, spec: TypeSpec, opening: Token) -> Literal["range", "length"]:
        if spec in (ScalarType("int"), ScalarType("float")):
            return "range"
        if spec == ScalarType("str") or isinstance(spec, ListType):
            return "length"
        raise self.fail(
            opening,
            f"bounds cannot follow {render_type(spec)}; they apply to int, float, str or list",
            "bad_constraint",
        )

    def bound_number(self) -> int | float:
        token = self.tok
        if token.kind != "number":
            raise self.fail(token, f"expected a number but found {token.describe()}", "syntax")
        self.advance()
        assert isinstance(token.value, int | float)
        return token.value
