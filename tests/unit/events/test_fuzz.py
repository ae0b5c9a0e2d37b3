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
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    EvaluationPlan,
    ExecutionPlan,
    GatePlan,
    OptimizationPlan,
    Outcome,
    evaluations,
    finish_gate,
    handle,
    in_memory_env,
    optimizations,
)
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.events.commands import COMMAND_TYPES, RegisterDataset, RegisterProgram
from dspyops.events.topics import Topics, command_topic
from dspyops.runtime.profiles import ProfileRegistry, load_profiles
from dspyops.runtime.redaction import Redactor
from tests.support.fuzz_messages import agrees, broken, encoded, expected, outcome, valid

TOPICS = Topics("fuzz.")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# One store for every message, as a worker has: ids repeat, programs accumulate. A
# program and a dataset exist, and some messages name them, so long-running commands
# get as far as their plans: executions then run on the offline LM; runs are ended by
# a stand-in (what a run does is not under test here, only that it ends as one).
APP = DspyOps(in_memory_env())
LOOP = asyncio.new_event_loop()
PROGRAM, DATASET = "fuzz-p", "fuzz-d"
handle(
    APP,
    RegisterProgram(program_id=PROGRAM, name="p", signature="question: str -> answer: str"),
    CommandContext(command_id="fuzz-setup-1", correlation_id="setup"),
)
handle(
    APP,
    RegisterDataset(dataset_id=DATASET, name="d", examples=[{"question": "q", "answer": "a"}] * 3),
    CommandContext(command_id="fuzz-setup-2", correlation_id="setup"),
)


async def end_run(envelope: Any, plan: Any, ctx: CommandContext) -> Outcome:
    if isinstance(plan, GatePlan):
        for run in plan.runs:
            evaluations.fail_evaluation(APP, run.evaluation_id, "stand_in", "ended")
        return finish_gate(APP, plan)
    if isinstance(plan, OptimizationPlan):
        return optimizations.fail_optimization(APP, plan.optimization_id, "stand_in", "ended")
    return evaluations.fail_evaluation(APP, plan.evaluation_id, "stand_in", "ended")


EXECUTIONS = ExecutionJobs(
    APP, ProfileRegistry(load_profiles(None)), ModuleCache(), redactor=Redactor()
)
PROCESSOR = Processor(
    APP,
    TOPICS,
    jobs={
        ExecutionPlan: EXECUTIONS.run,
        OptimizationPlan: end_run,
        EvaluationPlan: end_run,
        GatePlan: end_run,
    },
)


def aimed(message: dict[str, Any]) -> dict[str, Any]:
    """Every other message that names a program or dataset names the ones that exist."""
    data = message.get("data")
    if (
        isinstance(data, dict)
        and hashlib.sha256(json.dumps(message, sort_keys=True).encode()).digest()[0] % 2
    ):
        for field, value in (("program_id", PROGRAM), ("dataset_id", DATASET)):
            if isinstance(data.get(field), str):
                data[field] = value
    return message


def check(name: str, message: dict[str, Any]) -> None:
    message = aimed(message)
    record = Incoming(
        command_topic(TOPICS, name, message.get("data")), 0, 0, b"k", encoded(message)
    )
    (out,) = LOOP.run_until_complete(PROCESSOR.process(record))
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
