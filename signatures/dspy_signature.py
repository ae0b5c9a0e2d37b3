"""The DSPy signature class of a compiled signature, built from its parsed fields.

Only runtime code imports this module (``dspyops.signatures`` does not), so the API and
the projector never load dspy.

DSPy gets plain types (its adapters parse LM text into them and know nothing of
bounds); the bounds go into the field descriptions, for the LM to read. The class is
built with ``dspy.make_signature`` from the parsed fields, never from the text (see
docs/signatures.md, Safety).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import dspy

from dspyops.signatures.compile import CACHE_SIZE, CompiledSignature
from dspyops.signatures.pytypes import describe_constraint, python_type
from dspyops.signatures.spec import FieldSpec


@lru_cache(maxsize=CACHE_SIZE)
def dspy_signature(compiled: CompiledSignature) -> type[dspy.Signature]:
    """Built once per compiled signature, so a worker may call it per message.

    The class is shared: never modify it in place (DSPy's ``with_instructions`` and
    similar return new classes).
    """
    fields: dict[str, Any] = {}
    for field in compiled.parsed.fields:
        desc = _field_description(field, compiled.descriptions)
        kwargs = {"desc": desc} if desc is not None else {}
        make = dspy.InputField if field.side == "input" else dspy.OutputField
        fields[field.name] = (python_type(field.type), make(**kwargs))
    return dspy.make_signature(fields, compiled.instructions, signature_name="NativeSignature")


def _field_description(field: FieldSpec, descriptions: Mapping[str, str]) -> str | None:
    desc = descriptions.get(field.name)
    if field.constraint is None:
        return desc
    bound = describe_constraint(field.constraint)
    return f"{desc} ({bound})" if desc else bound
