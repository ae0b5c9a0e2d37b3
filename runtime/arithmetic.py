"""Evaluate an arithmetic expression an LM wrote, without running it as code.

The text is parsed with ``ast.parse(mode="eval")`` (the parser only: nothing is
compiled or executed) and the tree is walked with an allowlist: number literals,
``+ - * / // % **``, unary ``+``/``-`` and parentheses. Anything else (names, calls,
attributes, comparisons, strings, ``True``) is refused with a message written for the
LM, which sees it as the tool's observation.

Bounded so no expression can make a worker spin or allocate without limit: the text is
at most ``MAX_LENGTH`` characters (which also bounds the nesting), the tree at most
``MAX_DEPTH`` levels, an integer exponent at most ``MAX_EXPONENT`` in size, and every
intermediate integer at most ``MAX_INT_BITS`` bits (checked *before* a power is
computed, since ``10**10**8`` would take minutes); a float that overflows to infinity
is refused too.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_LENGTH = 300
MAX_DEPTH = 100
MAX_EXPONENT = 10_000
MAX_INT_BITS = 4096

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
# What the LM is told when it uses a construct outside the allowlist.
_REFUSED: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attributes are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "and/or are not allowed",
    ast.Subscript: "indexing is not allowed",
}


class ExpressionError(ValueError):
    """The expression cannot be evaluated; the message is meant for the LM."""


def evaluate(expression: str) -> Number:
    """The value of ``expression``; raises ExpressionError saying what is wrong."""
    text = expression.strip()
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression too long ({len(text)} characters, at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as exc:
        where = f" at column {exc.offset}" if isinstance(exc, SyntaxError) and exc.offset else ""
        raise ExpressionError(f"not an arithmetic expression: invalid syntax{where}") from None
    except (MemoryError, RecursionError):
        raise ExpressionError("expression too deeply nested") from None
    return _value(tree.body, 1)


def _value(node: ast.expr, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression too complex (more than {MAX_DEPTH} nested operations)")
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_value(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp):
        left = _value(node.left, depth + 1)
        right = _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        binary = _BINARY.get(type(node.op))
        if binary is None:
            raise ExpressionError(f"operator not allowed: {_symbol(node.op)}")
        return _checked(_apply(binary, left, right))
    if isinstance(node, ast.Name):
        raise ExpressionError(f"unknown name {node.id}")
    message = _REFUSED.get(type(node), f"not allowed in an arithmetic expression: {_kind(node)}")
    raise ExpressionError(message)


def _number(value: object) -> Number:
    # bool is an int subclass: `True + 1` is not arithmetic on numbers the LM wrote.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, complex):
        raise ExpressionError("complex numbers are not allowed")
    raise ExpressionError(f"not a number: {value!r}")


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(f"exponent too large ({exponent}, at most {MAX_EXPONENT} in size)")
    # An integer result has about bits(base) * exponent bits: refuse before computing it.
    whole = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if whole and (abs(int(base)).bit_length() - 1) * int(exponent) > MAX_INT_BITS:
        raise ExpressionError(f"result too large (more than {MAX_INT_BITS} bits)")
    result = _apply(operator.pow, base, exponent)
    if isinstance(result, complex):
        raise ExpressionError("a negative number to a fractional power has no real value")
    return result


def _apply(fn: Callable[[Number, Number], Number], left: Number, right: Number) -> Number:
    try:
        return fn(left, right)
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except OverflowError:
        raise ExpressionError("result too large") from None


def _checked(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"result too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError("result too large")
    return value


_SYMBOLS: dict[type[ast.operator], str] = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.MatMult: "@",
}


def _symbol(op: ast.operator) -> str:
    return _SYMBOLS.get(type(op), type(op).__name__)


def _kind(node: ast.AST) -> str:
    return type(node).__name__.lower()
