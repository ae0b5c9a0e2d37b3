"""Commands made from the published JSON Schemas, and where the contract says each ends.

`valid(name)` draws whole messages from a command's schema; `broken(name)` draws one and
puts a value of the wrong JSON type in one field (of the envelope or of `data`).
`expected(name, message)` says where the contract sends it: `deadletter` (not a usable
envelope), `rejected` (`CommandRejected` naming a field of `data`) or `handled` (decoded
and applied: a result, possibly a domain rejection).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
from hypothesis import strategies as st

from dspyops.events.codec import MAX_JSON_DEPTH, MAX_MESSAGE_BYTES
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.schema_export import command_schema
from dspyops.events.text import refused_text
from tests.support.schema_strategies import from_schema

# One wrong value per JSON type, to put where the schema wants another type.
WRONG: list[Any] = [None, True, 0, 1.5, "x", [], {}]


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _envelope_validator(name: str) -> jsonschema.Draft202012Validator:
    """The command's message schema with any `data` object: the envelope's own rules."""
    schema = command_schema(name)
    schema["properties"]["data"] = {"type": ["object", "null"]}
    return _validator(schema)


ENVELOPES = {name: _envelope_validator(name) for name in COMMAND_TYPES}
DATA = {name: _validator(cls.model_json_schema()) for name, cls in COMMAND_TYPES.items()}


@functools.cache
def valid(name: str) -> st.SearchStrategy[dict[str, Any]]:
    # Built once per command: `broken` draws from it for every example, and building it
    # (the pydantic schema, then the strategy and its validation) cost more than the
    # draw and the processing together. A strategy is immutable, so sharing it is safe.
    strategy: st.SearchStrategy[dict[str, Any]] = from_schema(command_schema(name))
    return strategy


@st.composite
def broken(draw: st.DrawFn, name: str) -> dict[str, Any]:
    message = draw(valid(name))
    target = (
        message if draw(st.sampled_from(["envelope", "data"])) == "envelope" else message["data"]
    )
    key = draw(st.sampled_from([*sorted(target), "unknown_field"]))
    target[key] = draw(st.sampled_from(WRONG))
    return message


def encoded(message: dict[str, Any]) -> bytes:
    """As a producer would send it (lone surrogates spelled as JSON escapes)."""
    return json.dumps(message).encode("utf-8", "surrogatepass")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def expected(name: str, message: dict[str, Any]) -> str:
    """Where the contract says `message` ends: deadletter, rejected or handled."""
    attributes = {k: v for k, v in message.items() if k != "data"}
    if len(encoded(message)) > MAX_MESSAGE_BYTES or _depth(message) > MAX_JSON_DEPTH:
        return "deadletter"
    if list(refused_text(attributes)) or not ENVELOPES[name].is_valid(message):
        return "deadletter"
    data = message.get("data")
    if not isinstance(data, dict):
        return "rejected"
    if list(refused_text(data)) or not DATA[name].is_valid(data):
        return "rejected"
    return "handled"


def outcome(result_type: str, errors: list[dict[str, Any]]) -> str:
    """`rejected` for a CommandRejected that names fields of `data`, `internal_error` for
    a bug (never what the contract says), else `handled`."""
    if result_type != "CommandRejected":
        return "handled"
    if any(e["type"] == "internal_error" for e in errors):
        return "internal_error"
    wire = any(e["loc"][:1] == ["data"] or e["loc"] == ["type"] for e in errors)
    domain = {"not_found", "illegal_transition", "already_exists", "invalid_input"}
    return "rejected" if wire and not any(e["type"] in domain for e in errors) else "handled"


def agrees(want: str, got: str, errors: list[dict[str, Any]]) -> bool:
    """Whether an outcome is the one the contract says; one allowance, below."""
    if want == "handled" and got == "rejected":
        # Only a rule across fields, which a JSON Schema cannot say (UpdateProgram needs
        # description or instructions; a feedback scale's min below its max), may reject
        # a schema-valid command; it names the object whose fields disagree (`data`, or
        # an object in it), never a field's type.
        return all(e["loc"][:1] == ["data"] and e["type"] == "value_error" for e in errors)
    return want == got
