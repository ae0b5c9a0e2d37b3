"""The rule for field names.

A field name becomes an attribute of a pydantic model, of a `dspy.Signature` class,
of `dspy.Prediction` objects and a keyword argument of `dspy.Predict.__call__`, and a
section marker in DSPy's chat prompt. The rule is deliberately narrower than "any
Python identifier" so that no name can shadow something those depend on:

- ASCII only: `[A-Za-z][A-Za-z0-9_]*`, at most MAX_NAME_CHARS characters. Starting
  with a letter excludes dunders (`__class__`) and pydantic's private `_attributes`.
- not a Python keyword (`class`, `None`, ...).
- not starting with `model_` (pydantic's protected namespace).
- not in RESERVED_NAMES.

The list is fixed here rather than computed from `dir()` at import time so the grammar
does not change silently with a library upgrade; a unit test checks that it still
covers the public attributes of the installed versions.
"""

from __future__ import annotations

import keyword
import re

MAX_NAME_CHARS = 64

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

RESERVED_NAMES: frozenset[str] = frozenset(
    {
        # pydantic.BaseModel public attributes (v1 compatibility names included)
        "construct", "copy", "dict", "from_orm", "json", "parse_file", "parse_obj",
        "parse_raw", "schema", "schema_json", "update_forward_refs", "validate",
        # dspy.Signature class attributes and its metaclass properties
        "append", "append_instructions", "delete", "dump_state", "equals", "insert",
        "load_state", "prepend", "with_instructions", "with_updated_fields",
        "instructions", "signature", "input_fields", "output_fields", "fields",
        # dspy.Prediction / dspy.Example attributes
        "completions", "from_completions", "get", "get_lm_usage", "inputs", "items",
        "keys", "labels", "set_lm_usage", "toDict", "values", "with_inputs", "without",
        # keyword arguments dspy.Predict.__call__ takes for itself
        "demos", "config", "lm", "new_signature",
        # output fields DSPy modules add (ChainOfThought, ReAct) and the ChatAdapter's
        # end-of-answer marker `[[ ## completed ## ]]`
        "reasoning", "trajectory", "next_thought", "next_tool_name", "next_tool_args",
        "completed",
    }
)  # fmt: skip


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a field name, or None if it can."""
    if not _NAME.match(name):
        if not name.isascii():
            return f"field name {name!r} must use only ASCII letters, digits and '_'"
        return f"field name {name!r} must start with a letter"
    if len(name) > MAX_NAME_CHARS:
        return f"field name is longer than {MAX_NAME_CHARS} characters"
    if keyword.iskeyword(name):
        return f"field name {name!r} is a Python keyword"
    if name.startswith("model_"):
        return f"field name {name!r} is reserved (names starting with 'model_' belong to pydantic)"
    if name in RESERVED_NAMES:
        return f"field name {name!r} is reserved (it clashes with a DSPy or pydantic attribute)"
    return None
