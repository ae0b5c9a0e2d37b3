"""Compile signature text into the artefacts the runtime needs.

The DSPy signature gets plain types (DSPy's adapters parse LM text into them and know
nothing of bounds); the bounds go into the field descriptions, for the LM to read, and
into the pydantic models, which enforce them before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import dspy
import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model

from dspyops.signatures.errors import SignatureError, SignatureIssue, ValidationFailed
from dspyops.signatures.grammar import parse
from dspyops.signatures.pytypes import bounded_type, describe_constraint, python_type
from dspyops.signatures.render import render
from dspyops.signatures.spec import FieldSpec, OptionalType, ParsedSignature

# Lax mode gives the "3" -> 3 coercion; non-finite floats are refused because the
# validated values go into JSON events and `NaN` is not JSON.
_MODEL_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_CACHE_SIZE = 512


@dataclass(frozen=True, eq=False)
class CompiledSignature:
    """Everything derived from one (text, instructions, descriptions); never mutated."""

    text: str
    parsed: ParsedSignature
    instructions: str | None
    descriptions: Mapping[str, str]
    dspy_signature: type[dspy.Signature]
    input_model: type[BaseModel]
    output_model: type[BaseModel]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.parsed.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.parsed.outputs)

    def input_json_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def output_json_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()

    def validate_inputs(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return _validate(self.input_model, data)

    def validate_outputs(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return _validate(self.output_model, data)


def compile_signature(
    text: str,
    *,
    instructions: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> CompiledSignature:
    """Parse and compile; raises SignatureError. Cached, so workers may call it per message."""
    if instructions is not None and not isinstance(instructions, str):
        raise SignatureError.single(0, "instructions must be a string", "bad_instructions")
    items = tuple(sorted((descriptions or {}).items()))
    for name, desc in items:
        if not isinstance(name, str) or not isinstance(desc, str):
            raise SignatureError.single(
                0, "descriptions must map names to strings", "bad_description"
            )
    return _compile(text, instructions, items)


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(
    text: str, instructions: str | None, descriptions: tuple[tuple[str, str], ...]
) -> CompiledSignature:
    parsed = parse(text)
    known = {field.name for field in parsed.fields}
    unknown = [name for name, _ in descriptions if name not in known]
    if unknown:
        raise SignatureError(
            [
                SignatureIssue(
                    column=0,
                    message=f"description given for unknown field {name!r}",
                    code="unknown_field",
                )
                for name in unknown
            ]
        )
    descs = dict(descriptions)
    return CompiledSignature(
        text=render(parsed),
        parsed=parsed,
        instructions=instructions,
        descriptions=MappingProxyType(descs),
        dspy_signature=_dspy_signature(parsed, instructions, descs),
        input_model=_model("SignatureInputs", parsed.inputs, descs),
        output_model=_model("SignatureOutputs", parsed.outputs, descs),
    )


def _field_description(field: FieldSpec, descriptions: Mapping[str, str]) -> str | None:
    desc = descriptions.get(field.name)
    if field.constraint is None:
        return desc
    bound = describe_constraint(field.constraint)
    return f"{desc} ({bound})" if desc else bound


def _dspy_signature(
    parsed: ParsedSignature, instructions: str | None, descriptions: Mapping[str, str]
) -> type[dspy.Signature]:
    fields: dict[str, Any] = {}
    for field in parsed.fields:
        desc = _field_description(field, descriptions)
        kwargs = {"desc": desc} if desc is not None else {}
        make = dspy.InputField if field.side == "input" else dspy.OutputField
        fields[field.name] = (python_type(field.type), make(**kwargs))
    return dspy.make_signature(fields, instructions, signature_name="NativeSignature")


def _model(
    model_name: str, fields: tuple[FieldSpec, ...], descriptions: Mapping[str, str]
) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for field in fields:
        # Optional means "may be null"; a missing optional field is read as null too.
        default = None if isinstance(field.type, OptionalType) else ...
        info = Field(default, description=descriptions.get(field.name))
        definitions[field.name] = (bounded_type(field.type, field.constraint), info)
    model: type[BaseModel] = create_model(model_name, __config__=_MODEL_CONFIG, **definitions)
    return model


def _validate(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    payload = dict(data) if isinstance(data, Mapping) else data
    try:
        instance = model.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ValidationFailed(errors) from None
    return instance.model_dump(mode="json")
