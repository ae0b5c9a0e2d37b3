"""Whether a value of one signature type always fits another: a pipeline's bindings.

A step's output feeds another step's input (or a program output) only when every value
the first can hold is valid for the second, as the second's pydantic model checks it:
the same type; `T` into `Optional[T]`; `int` into `float`; a `Literal` into the scalar
type of all its values, or into a `Literal` holding all its values; lists and dicts
element by element. Bounds (`float[0, 1]`) are not compared: a value outside the target's
bounds fails that step's validation when it runs, with the field named.
"""

from __future__ import annotations

from dspyops.signatures.spec import (
    DictType,
    ListType,
    LiteralType,
    OptionalType,
    ScalarType,
    TypeSpec,
)


def assignable(source: TypeSpec, target: TypeSpec) -> bool:
    if source == target:
        return True
    if isinstance(target, OptionalType):
        inner = source.inner if isinstance(source, OptionalType) else source
        return assignable(inner, target.inner)
    if isinstance(source, OptionalType):
        return False  # None would not fit a target that cannot be null
    if isinstance(source, ScalarType) and isinstance(target, ScalarType):
        return source.name == "int" and target.name == "float"
    if isinstance(source, LiteralType):
        if isinstance(target, LiteralType):
            return set(source.values) <= set(target.values)
        if isinstance(target, ScalarType):
            kinds = {"str" if isinstance(v, str) else "int" for v in source.values}
            return kinds == {target.name} or (kinds == {"int"} and target.name == "float")
        return False
    if isinstance(source, ListType) and isinstance(target, ListType):
        return assignable(source.item, target.item)
    if isinstance(source, DictType) and isinstance(target, DictType):
        return assignable(source.value, target.value)
    return False
