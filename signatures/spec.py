"""The parsed form of a signature: plain immutable data, no behaviour.

The parser produces it, `render` turns it back into canonical text, `compile` turns it
into pydantic models (the outputs' validation) and `dspy_signature` into the DSPy class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

ScalarName: TypeAlias = Literal["str", "int", "float", "bool"]
LiteralValue: TypeAlias = str | int


@dataclass(frozen=True)
class ScalarType:
    name: ScalarName


@dataclass(frozen=True)
class ListType:
    item: TypeSpec


@dataclass(frozen=True)
class DictType:
    """Keys are always `str`: JSON objects cannot have anything else."""

    value: TypeSpec


@dataclass(frozen=True)
class OptionalType:
    inner: TypeSpec


@dataclass(frozen=True)
class LiteralType:
    values: tuple[LiteralValue, ...]


TypeSpec: TypeAlias = ScalarType | ListType | DictType | OptionalType | LiteralType


@dataclass(frozen=True)
class Constraint:
    """An inclusive bound on a field's value.

    kind "range" bounds an int/float value; kind "length" bounds the length of a str
    or list. Both bounds are always present (the grammar requires them).
    """

    kind: Literal["range", "length"]
    low: int | float
    high: int | float


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: TypeSpec
    side: Literal["input", "output"]
    constraint: Constraint | None = None


@dataclass(frozen=True)
class ParsedSignature:
    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return self.inputs + self.outputs
