"""Compile signature text into what validation needs: canonical text and pydantic models.

The pydantic input and output models enforce the bounds before anything is recorded.
Pydantic only: the DSPy signature class is built from a compiled signature by
`signatures.dspy_signature`, which only runtime code imports, so the API and the
projector never load dspy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model

from dspyops.signatures.errors import SignatureError, SignatureIssue, ValidationFailed
from dspyops.signatures.grammar import MAX_SIGNATURE_CHARS, parse
from dspyops.signatures.pytypes import bounded_type
from dspyops.signatures.render import render
from dspyops.signatures.spec import FieldSpec, OptionalType, ParsedSignature

# Non-finite floats are refused because the validated values go into JSON events and
# `NaN` is not JSON. Strictness is chosen per call: what a producer sends (inputs,
# dataset examples) is strict like the wire contract; what an LM answers is lax ("3" ->
# 3 for an int), since DSPy parses text.
_MODEL_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
# Compiled signatures kept per process (here and in `dspy_signature`).
CACHE_SIZE = 512


@dataclass(frozen=True, eq=False)
class CompiledSignature:
    """Everything derived from one (text, instructions, descriptions); never mutated.

    Equal only to itself (``eq=False``): `compile_signature` returns the same object for
    the same arguments, and `dspy_signature` caches the DSPy class per object.
    """

    text: str
    parsed: ParsedSignature
    instructions: str | None
    descriptions: Mapping[str, str]
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
        """A producer's inputs, strictly: no `true` for an int, no `"0.5"` for a float."""
        return _validate(self.input_model, data, strict=True)

    def validate_outputs(self, data: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
        """An LM's outputs (lax), or a producer's labels (`strict`)."""
        return _validate(self.output_model, data, strict=strict)


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


@lru_cache(maxsize=CACHE_SIZE)
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
    canonical = render(parsed)
    # What is stored is the canonical form, and it is parsed again on every use: it must
    # fit the same limit, or a program would register and then never run.
    if len(canonical) > MAX_SIGNATURE_CHARS:
        raise SignatureError.single(
            0,
            f"the signature's canonical form is {len(canonical)} characters long; the limit "
            f"is {MAX_SIGNATURE_CHARS} (write it shorter, e.g. fewer Literal values)",
            "too_long",
        )
    descs = dict(descriptions)
    return CompiledSignature(
        text=canonical,
        parsed=parsed,
        instructions=instructions,
        descriptions=MappingProxyType(descs),
        input_model=_model("SignatureInputs", parsed.inputs, descs),
        output_model=_model("SignatureOutputs", parsed.outputs, descs),
    )


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


def _validate(model: type[BaseModel], data: Mapping[str, Any], *, strict: bool) -> dict[str, Any]:
    payload = dict(data) if isinstance(data, Mapping) else data
    try:
        instance = model.model_validate(payload, strict=strict)
    except pydantic.ValidationError as exc:
        errors = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ValidationFailed(errors) from None
    return instance.model_dump(mode="json")
