"""Native signatures: parse, render and compile `question: str -> answer: str` text.

Pydantic only: the DSPy signature class is in `signatures.dspy_signature`, which is
deliberately not imported here (runtime code imports it; the API and projector must not
load dspy). Grammar and error format: docs/signatures.md.
"""

from dspyops.signatures.compile import CompiledSignature, compile_signature
from dspyops.signatures.errors import SignatureError, SignatureIssue, ValidationFailed
from dspyops.signatures.grammar import MAX_DEPTH, MAX_FIELDS, MAX_SIGNATURE_CHARS, parse
from dspyops.signatures.names import MAX_NAME_CHARS, RESERVED_NAMES
from dspyops.signatures.render import render
from dspyops.signatures.spec import (
    Constraint,
    DictType,
    FieldSpec,
    ListType,
    LiteralType,
    OptionalType,
    ParsedSignature,
    ScalarType,
    TypeSpec,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FIELDS",
    "MAX_NAME_CHARS",
    "MAX_SIGNATURE_CHARS",
    "RESERVED_NAMES",
    "CompiledSignature",
    "Constraint",
    "DictType",
    "FieldSpec",
    "ListType",
    "LiteralType",
    "OptionalType",
    "ParsedSignature",
    "ScalarType",
    "SignatureError",
    "SignatureIssue",
    "TypeSpec",
    "ValidationFailed",
    "compile_signature",
    "parse",
    "render",
]
