"""Python annotations for parsed types: plain ones for DSPy, bounded ones for pydantic."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import Field

from dspyops.signatures.render import render_number
from dspyops.signatures.spec import (
    Constraint,
    DictType,
    ListType,
    LiteralType,
    OptionalType,
    ScalarType,
    TypeSpec,
)

_SCALAR_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def python_type(spec: TypeSpec) -> Any:
    match spec:
        case ScalarType(name=name):
            return _SCALAR_TYPES[name]
        case ListType(item=item):
            return list[python_type(item)]  # type: ignore[misc]
        case DictType(value=value):
            return dict[str, python_type(value)]  # type: ignore[misc]
        case OptionalType(inner=inner):
            return Optional[python_type(inner)]  # noqa: UP045 - built at runtime
        case LiteralType(values=values):
            return Literal.__getitem__(values)
    raise TypeError(f"not a type spec: {spec!r}")


def bounded_type(spec: TypeSpec, constraint: Constraint | None) -> Any:
    """`python_type(spec)` with the bounds attached to the non-None part."""
    if constraint is None:
        return python_type(spec)
    if isinstance(spec, OptionalType):
        return Optional[bounded_type(spec.inner, constraint)]  # noqa: UP045
    return Annotated[python_type(spec), _bounds_field(constraint)]


def _bounds_field(constraint: Constraint) -> Any:
    if constraint.kind == "range":
        return Field(ge=constraint.low, le=constraint.high)
    return Field(min_length=int(constraint.low), max_length=int(constraint.high))


def describe_constraint(constraint: Constraint) -> str:
    """A phrase the LM reads in the field description, since DSPy has no bounds of its own."""
    low, high = render_number(constraint.low), render_number(constraint.high)
    if constraint.kind == "range":
        return f"a value from {low} to {high} inclusive"
    return f"length from {low} to {high} inclusive"
