"""Canonical text form of a parsed signature.

One space after ':' and ',', ' -> ' between the sides, `Optional[T]` for nullable
types (never `T | None`), bounds written right after the type they bound, string
literals in double quotes. `parse(render(s))` gives back `s` exactly.
"""

from __future__ import annotations

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


def render(sig: ParsedSignature) -> str:
    inputs = ", ".join(render_field(field) for field in sig.inputs)
    outputs = ", ".join(render_field(field) for field in sig.outputs)
    return f"{inputs} -> {outputs}"


def render_field(field: FieldSpec) -> str:
    return f"{field.name}: {render_type(field.type, field.constraint)}"


def render_type(spec: TypeSpec, constraint: Constraint | None = None) -> str:
    """Text of `spec`; `constraint` bounds the top level (inside Optional, if any)."""
    bounds = _render_constraint(constraint) if constraint else ""
    match spec:
        case ScalarType(name=name):
            return name + bounds
        case ListType(item=item):
            return f"list[{render_type(item)}]{bounds}"
        case DictType(value=value):
            return f"dict[str, {render_type(value)}]"
        case OptionalType(inner=inner):
            return f"Optional[{render_type(inner, constraint)}]"
        case LiteralType(values=values):
            return "Literal[" + ", ".join(render_literal(v) for v in values) + "]"
    raise TypeError(f"not a type spec: {spec!r}")


def render_literal(value: LiteralValue) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def render_number(value: int | float) -> str:
    # repr of a finite float always re-tokenizes to the same float.
    return repr(value) if isinstance(value, float) else str(value)


def _render_constraint(constraint: Constraint) -> str:
    return f"[{render_number(constraint.low)}, {render_number(constraint.high)}]"
