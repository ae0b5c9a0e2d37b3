"""Fuzzing the codec and the worker's processing with messages made from the JSON Schemas.

Thousands of messages, generated from each command's published JSON Schema (valid ones)
and by breaking one field of a valid one (invalid ones), go through the worker's own
`Processor` on an in-memory event store. The contract says where each must end:

- schema-valid with storable text: the command is decoded, handled, and gets exactly one
  terminal result (success or a domain rejection), never a dead letter;
- its `data` schema-invalid or holding refused text: exactly one `CommandRejected` whose
  errors point into `data`;
- its envelope schema-invalid: exactly one dead letter.

The schemas and the models must agree: what one accepts, the other accepts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dspyops.aggregates.app import DspyOps, in_memory_env
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.events.codec import MAX_JSON_DEPTH, MAX_MESSAGE_BYTES
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.schema_export import command_schema
from dspyops.events.text import refused_text
from dspyops.events.topics import Topics, command_topic
from tests.support.schema_strategies import from_schema

TOPICS = Topics("fuzz.")
EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
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
APP = DspyOps(in_memory_env())
LOOP = asyncio.new_event_loop()


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def expected(name: str, message: dict[str, Any]) -> str:
    """Where the contract says `message` ends: deadletter, rejected or handled."""
    raw = json.dumps(message).encode("utf-8", "surrogatepass")
    attributes = {k: v for k, v in message.items() if k != "data"}
    if len(raw) > MAX_MESSAGE_BYTES or _depth(message) > MAX_JSON_DEPTH:
        return "deadletter"
    if list(refused_text(attributes)) or not ENVELOPES[name].is_valid(message):
        return "deadletter"
    data = message.get("data")
    if not isinstance(data, dict):
        return "rejected"
    if list(refused_text(data)) or not DATA[name].is_valid(data):
        return "rejected"
    return "handled"


def process(name: str, message: dict[str, Any]) -> list[Any]:
    # One store for every message, as a worker has: ids repeat, programs accumulate.
    raw = json.dumps(message).encode("utf-8", "surrogatepass")
    record = Incoming(command_topic(TOPICS, name), 0, 0, b"k", raw)
    return LOOP.run_until_complete(Processor(APP, TOPICS).process(record))


def outcome_of(outgoing: list[Any]) -> tuple[str, Any]:
    (out,) = outgoing  # exactly one message, whatever came in
    if out.topic == TOPICS.deadletter:
        return "deadletter", out.envelope.data
    assert out.topic == TOPICS.results
    assert out.envelope.type.startswith("dspyops.result.")
    if out.envelope.type == "dspyops.result.CommandRejected":
        errors = (out.envelope.data or {})["errors"]
        if any(e["loc"][:1] == ["data"] or e["loc"] == ["type"] for e in errors) and not any(
            e["type"] in {"not_found", "illegal_transition", "already_exists", "invalid_input"}
            for e in errors
        ):
            return "rejected", errors
    return "handled", out.envelope.type


def check(name: str, message: dict[str, Any]) -> None:
    want = expected(name, message)
    got, detail = outcome_of(process(name, message))
    if want == "handled" and got == "rejected":
        # Only a rule across fields, which a JSON Schema cannot say (UpdateProgram needs
        # description or instructions), may reject a schema-valid command; it names
        # `data` as a whole, never a field's type.
        assert all(e["loc"] == ["data"] and e["type"] == "value_error" for e in detail), detail
        return
    assert got == want, (want, got, detail, message)


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_schema_valid_commands_are_handled(name: str) -> None:
    @FUZZ
    @given(from_schema(command_schema(name)))
    def run(message: dict[str, Any]) -> None:
        check(name, message)

    run()


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_one_broken_field_ends_as_the_schema_says(name: str) -> None:
    @FUZZ
    @given(from_schema(command_schema(name)), st.data())
    def run(message: dict[str, Any], data: st.DataObject) -> None:
        where = data.draw(st.sampled_from(["envelope", "data"]))
        target = message if where == "envelope" else message["data"]
        keys = sorted(target) or ["extra"]
        key = data.draw(st.sampled_from([*keys, "unknown_field"]))
        target[key] = data.draw(st.sampled_from(WRONG))
        check(name, message)

    run()
