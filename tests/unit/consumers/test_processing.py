"""Processor: one command record in, the messages it causes out (no Kafka: the records)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    ExecutionPlan,
    Outcome,
    handle,
    in_memory_env,
)
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.events.codec import encode
from dspyops.events.commands import ExecuteProgram
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics

TOPICS = Topics("t.")
REGISTER = {"program_id": "p", "name": "P", "signature": "question: str -> answer: str"}


def record(envelope: Envelope | bytes, topic: str = TOPICS.programs, key: bytes = b"k") -> Incoming:
    value = envelope if isinstance(envelope, bytes) else encode(envelope)
    return Incoming(topic=topic, partition=0, offset=7, key=key, value=value)


class Jobs:
    """Stands in for the worker's jobs: records what it was asked to run."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.plans: list[Any] = []
        self.fail_with = fail_with

    async def run(self, envelope: Envelope, plan: Any, ctx: CommandContext) -> Outcome:
        self.plans.append(plan)
        if self.fail_with is not None:
            raise self.fail_with
        return Outcome(result_type="ExecutionSucceeded", subject=plan.execution_id, data={"x": 1})


@pytest.fixture
def app() -> DspyOps:
    return DspyOps(in_memory_env())


async def test_a_program_command_ends_in_its_result_keyed_by_correlation(app: DspyOps) -> None:
    processor = Processor(app, TOPICS)
    command = command_envelope("RegisterProgram", REGISTER, correlationid="corr")
    (out,) = await processor.process(record(command))
    assert (out.topic, out.key) == (TOPICS.results, "corr")
    assert out.envelope.type == "dspyops.result.ProgramRegistered"
    assert (out.envelope.causationid, out.envelope.subject) == (command.id, "p")
    (again,) = await processor.process(record(command))
    assert again.envelope == out.envelope.model_copy(update={"time": again.envelope.time})


async def test_bytes_that_are_no_envelope_go_to_the_dead_letter_topic(app: DspyOps) -> None:
    (out,) = await Processor(app, TOPICS).process(record(b"{not json", key=b"key-1"))
    assert (out.topic, out.key) == (TOPICS.deadletter, "key-1")
    data = out.envelope.data or {}
    assert data["error"]["code"] == "not_json"
    assert (data["topic"], data["offset"]) == (TOPICS.programs, 7)


async def test_a_command_on_the_wrong_topic_is_rejected(app: DspyOps) -> None:
    command = command_envelope("RegisterProgram", REGISTER)
    (out,) = await Processor(app, TOPICS).process(record(command, topic=TOPICS.executions))
    assert out.envelope.type == "dspyops.result.CommandRejected"
    assert (out.envelope.data or {})["errors"][0]["type"] == "wrong_topic"


async def test_a_gated_deploy_belongs_with_the_runs_and_an_ungated_one_does_not(
    app: DspyOps,
) -> None:
    gated = {"program_id": "p", "version": 2, "gate": {"dataset_id": "d"}}
    plain = {"program_id": "p", "version": 2}
    for data, topic in ((gated, TOPICS.programs), (plain, TOPICS.optimizations)):
        command = command_envelope("DeployProgram", data)
        (out,) = await Processor(app, TOPICS).process(record(command, topic=topic))
        errors = (out.envelope.data or {})["errors"]
        assert (errors[0]["type"], errors[0]["loc"]) == ("wrong_topic", ["type"]), data
    # On its own topic, the gated deploy is handled (here: no such program).
    command = command_envelope("DeployProgram", gated)
    (out,) = await Processor(app, TOPICS).process(record(command, topic=TOPICS.optimizations))
    assert (out.envelope.data or {})["errors"][0]["type"] == "not_found"


async def test_invalid_data_is_rejected_with_the_field(app: DspyOps) -> None:
    command = command_envelope("RegisterProgram", {**REGISTER, "progam_id": "typo"})
    (out,) = await Processor(app, TOPICS).process(record(command))
    errors = (out.envelope.data or {})["errors"]
    assert errors[0]["loc"] == ["data", "progam_id"]


async def test_a_long_running_command_hands_its_plan_to_the_job_of_that_plan(
    app: DspyOps,
) -> None:
    jobs = Jobs()
    processor = Processor(app, TOPICS, jobs={ExecutionPlan: jobs.run})
    await processor.process(record(command_envelope("RegisterProgram", REGISTER)))
    execute = command_envelope("ExecuteProgram", {"program_id": "p", "inputs": {"question": "q"}})
    (out,) = await processor.process(record(execute, topic=TOPICS.executions))
    (plan,) = jobs.plans
    assert isinstance(plan, ExecutionPlan)
    assert (plan.execution_id, plan.inputs) == (execute.id, {"question": "q"})
    assert out.envelope.type == "dspyops.result.ExecutionSucceeded"
    assert out.envelope.causationid == execute.id


async def test_a_bug_in_a_job_still_ends_the_command_and_an_outage_is_retried(
    app: DspyOps,
) -> None:
    processor = Processor(app, TOPICS, jobs={ExecutionPlan: Jobs(KeyError("bug")).run})
    await processor.process(record(command_envelope("RegisterProgram", REGISTER)))
    execute = command_envelope("ExecuteProgram", {"program_id": "p", "inputs": {"question": "q"}})
    (out,) = await processor.process(record(execute, topic=TOPICS.executions))
    assert out.envelope.type == "dspyops.result.CommandRejected"
    assert json.dumps(out.envelope.data).count("internal_error") == 1
    outage = Processor(
        app, TOPICS, jobs={ExecutionPlan: Jobs(psycopg.OperationalError("gone")).run}
    )
    with pytest.raises(psycopg.OperationalError):
        await outage.process(record(execute, topic=TOPICS.executions))


async def test_a_reused_ids_refusal_is_a_message_of_its_own(app: DspyOps) -> None:
    processor = Processor(app, TOPICS)
    update = {"program_id": "p", "description": "one"}
    await processor.process(record(command_envelope("RegisterProgram", REGISTER)))
    first = command_envelope("UpdateProgram", {"program_id": "nope", "description": "x"})
    (rejected,) = await processor.process(record(first))  # a rejection stored under the id
    other = first.model_copy(update={"data": update})
    (reused,) = await processor.process(record(other))
    assert (reused.envelope.data or {})["errors"][0]["type"] == "id_reused"
    # Consumers deduplicate by result id: the refusal must not look like the first reply.
    assert reused.envelope.id != rejected.envelope.id


async def test_an_execution_waiting_for_its_programs_first_cost_holds_no_thread(
    app: DspyOps,
) -> None:
    """Under a dollar budget with no execution ended yet, the next execution is planned
    again after pauses (not refused, not admitted unestimated) until the first ends."""
    from tests.support.executions import complete

    processor = Processor(app, TOPICS, {ExecutionPlan: Jobs().run})
    await processor.process(record(command_envelope("RegisterProgram", REGISTER)))
    budget = {"program_id": "p", "usd_per_day": 1.0}
    await processor.process(record(command_envelope("SetBudget", budget)))
    execute: dict[str, Any] = {"program_id": "p", "inputs": {"question": "?"}}
    ctx = CommandContext(command_id="first", correlation_id="first", actor=None)
    first = handle(app, ExecuteProgram(**execute), ctx)
    assert isinstance(first, ExecutionPlan)

    second = asyncio.create_task(
        processor.process(record(command_envelope("ExecuteProgram", execute), TOPICS.executions))
    )
    await asyncio.sleep(0.3)
    assert not second.done()
    complete(app, first, ctx, outputs={"answer": "a"}, cost_usd=0.1)
    (out,) = await asyncio.wait_for(second, 5)
    assert out.envelope.type == "dspyops.result.ExecutionSucceeded"


async def test_executions_arriving_together_are_planned_in_one_store_call_with_one_read() -> None:
    """Four executions at once: their first reads (stored outcome, execution) in one
    select, their program read once; a redelivered one among them gets its stored outcome
    and runs nothing, the new ones their plans."""
    from dspyops.aggregates.app.application import select_one_by_one
    from dspyops.aggregates.ids import program_uuid
    from tests.support.executions import complete

    selects: list[list[Any]] = []

    def counting(recorder: Any, ids: Any) -> Any:
        selects.append(list(ids))
        return select_one_by_one(recorder, ids)

    app = DspyOps(in_memory_env(), select_many=counting)
    jobs = Jobs()
    processor = Processor(app, TOPICS, {ExecutionPlan: jobs.run})
    await processor.process(record(command_envelope("RegisterProgram", REGISTER)))
    execute: dict[str, Any] = {"program_id": "p", "inputs": {"question": "?"}}
    done = command_envelope("ExecuteProgram", execute)
    ctx = CommandContext(command_id=done.id, correlation_id=done.id, actor=None)
    plan = handle(app, ExecuteProgram(**execute), ctx)
    stored = complete(app, plan, ctx, outputs={"answer": "stored"})

    program_reads = 0
    get = app.repository.get

    def counting_get(aggregate_id: Any, **kwargs: Any) -> Any:
        nonlocal program_reads
        program_reads += aggregate_id == program_uuid("p")
        return get(aggregate_id, **kwargs)

    app.repository.get = counting_get  # type: ignore[method-assign]
    fresh = [command_envelope("ExecuteProgram", execute) for _ in range(3)]
    outs = await asyncio.gather(
        *(processor.process(record(e, TOPICS.executions)) for e in [fresh[0], done, *fresh[1:]])
    )
    assert len(selects) == 1
    assert len(selects[0]) == 8
    assert program_reads == 1
    assert [plan.execution_id for plan in jobs.plans] == [e.id for e in fresh]
    (redelivered,) = outs[1]
    assert redelivered.envelope.data == stored.data
    assert (redelivered.envelope.data or {})["outputs"] == {"answer": "stored"}


async def test_an_unrecorded_refusal_never_shares_its_id_with_the_outcome_stored_later(
    app: DspyOps,
) -> None:
    """A command sent to the wrong topic is refused and nothing is recorded; sent again
    with the same id where it belongs, its refusal is recorded. The two answers differ, so
    their ids must: a consumer deduplicating by id, or the exactly-once outbox (keyed by
    it), would otherwise drop the second."""
    processor = Processor(app, TOPICS)
    execute = command_envelope("ExecuteProgram", {"program_id": "absent", "inputs": {}})
    (misrouted,) = await processor.process(record(execute, TOPICS.programs))
    (answered,) = await processor.process(record(execute, TOPICS.executions))
    assert misrouted.envelope.type == answered.envelope.type == "dspyops.result.CommandRejected"
    assert misrouted.envelope.data != answered.envelope.data
    assert misrouted.envelope.id != answered.envelope.id
    # The same record again (a redelivery) is the same message.
    (again,) = await processor.process(record(execute, TOPICS.programs))
    assert again.envelope.id == misrouted.envelope.id
