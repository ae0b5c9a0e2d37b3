"""Fuzzing the codec and the worker's processing with messages made from the JSON Schemas.

Thousands of messages, generated from each command's published JSON Schema (valid ones)
and by breaking one field of a valid one (invalid ones), go through the worker's own
`Processor` on an in-memory event store; each must end where the contract says
(tests/support/fuzz_messages.py), in exactly one message. The schemas and the models
must agree: what one accepts, the other accepts. tests/integration/test_worker_fuzz.py
sends a sample of the same through Kafka to a worker process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from dspyops.aggregates.app import DspyOps, in_memory_env
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.topics import Topics, command_topic
from tests.support.fuzz_messages import agrees, broken, encoded, expected, outcome, valid

TOPICS = Topics("fuzz.")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# One store for every message, as a worker has: ids repeat, programs accumulate.
APP = DspyOps(in_memory_env())
LOOP = asyncio.new_event_loop()


def check(name: str, message: dict[str, Any]) -> None:
    record = Incoming(command_topic(TOPICS, name), 0, 0, b"k", encoded(message))
    (out,) = LOOP.run_until_complete(Processor(APP, TOPICS).process(record))
    if out.topic == TOPICS.deadletter:
        got, errors = "deadletter", []
    else:
        assert out.topic == TOPICS.results
        errors = (out.envelope.data or {}).get("errors", [])
        got = outcome(out.envelope.short_type, errors)
    want = expected(name, message)
    assert agrees(want, got, errors), (want, got, errors, message)


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_schema_valid_commands_are_handled(name: str) -> None:
    @FUZZ
    @given(valid(name))
    def run(message: dict[str, Any]) -> None:
        check(name, message)

    run()


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_one_broken_field_ends_as_the_schema_says(name: str) -> None:
    @FUZZ
    @given(broken(name))
    def run(message: dict[str, Any]) -> None:
        check(name, message)

    run()
