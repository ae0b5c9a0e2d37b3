"""DspyopsClient against the real broker and a real `dspyops worker`: await, reject, timeout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from dspyops.client import (
    CommandRejectedError,
    CommandTimeoutError,
    DspyopsClient,
    Reply,
    TopicsMissingError,
)
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.commands import ExecuteProgram, RegisterProgram
from dspyops.events.results import CommandRejected, ExecutionSucceeded, ProgramRegistered
from dspyops.events.topics import Topics
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import drop_schema, stack_env, started_client

SIGNATURE = "question: str, context: str -> answer: str, confidence: float"


@pytest.fixture(scope="module")
def worker_env(bootstrap_servers: str, database_url: str, tmp_path_factory) -> Iterator[dict]:
    """One worker for the module: starting one costs seconds, the tests share its topics."""
    unique = uuid.uuid4().hex[:10]
    env = stack_env(bootstrap_servers, database_url, unique)
    log = tmp_path_factory.mktemp("client") / "worker.log"
    with WorkerProcess(env, log):
        yield env
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


@pytest.fixture
async def client(worker_env: dict) -> AsyncIterator[DspyopsClient]:
    async with started_client(worker_env, "tests@dspyops") as c:
        yield c


def _program(program_id: str) -> RegisterProgram:
    return RegisterProgram(program_id=program_id, name="QA", signature=SIGNATURE, lm="offline")


async def test_send_awaits_the_typed_terminal_result(client: DspyopsClient) -> None:
    program_id = f"qa-{uuid.uuid4().hex[:8]}"
    reply = await client.send(_program(program_id), timeout_s=90)
    registered = reply.expect(ProgramRegistered)
    assert registered.program_id == program_id
    assert registered.status == "draft"
    assert reply.envelope.actor == "tests@dspyops"

    reply = await client.send(
        ExecuteProgram(program_id=program_id, inputs={"question": "q?", "context": "c."}),
        correlation_id="req-1",
    )
    done = reply.expect(ExecutionSucceeded)
    assert done.offline is True
    assert done.outputs["answer"].startswith("[offline]")
    assert reply.envelope.correlationid == "req-1"


async def test_a_rejected_command_raises_with_its_errors(client: DspyopsClient) -> None:
    missing = f"nope-{uuid.uuid4().hex[:8]}"
    with pytest.raises(CommandRejectedError) as caught:
        await client.send(
            ExecuteProgram(program_id=missing, inputs={"question": "q", "context": "c"}),
            timeout_s=90,
        )
    assert caught.value.errors[0].type == "not_found"
    assert missing in str(caught.value)
    assert caught.value.reply is not None
    assert caught.value.reply.command_type == "ExecuteProgram"


async def test_invalid_data_is_rejected_with_pydantic_shaped_errors(client: DspyopsClient) -> None:
    envelope = client.envelope("RegisterProgram", {"progam_id": "typo", "version": "1"})
    with pytest.raises(CommandRejectedError) as caught:
        await client.request(envelope, timeout_s=90)
    errors = {(tuple(e.loc), e.type) for e in caught.value.errors}
    assert (("data", "name"), "missing") in errors
    assert (("data", "progam_id"), "extra_forbidden") in errors
    # A one-signature program without its signature: the domain names the field.
    envelope = client.envelope("RegisterProgram", {"name": "QA"})
    with pytest.raises(CommandRejectedError) as caught:
        await client.request(envelope, timeout_s=90)
    assert [(e.loc, e.type) for e in caught.value.errors] == [(["signature"], "missing")]


async def test_check_false_returns_the_rejection(client: DspyopsClient) -> None:
    envelope = client.envelope("TrainProgram", {"program_id": f"nope-{uuid.uuid4().hex[:8]}"})
    reply = await client.request(envelope, timeout_s=90, check=False)
    assert isinstance(reply.result, CommandRejected)
    assert reply.rejected
    assert reply.failed
    assert reply.terminal


async def test_results_subscription_sees_only_its_program(client: DspyopsClient) -> None:
    mine, other = (f"qa-{uuid.uuid4().hex[:8]}" for _ in range(2))
    seen: list[Reply] = []

    async def collect() -> None:
        async for reply in client.results(program_id=mine):
            seen.append(reply)
            if len(seen) == 2:
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0)  # the subscription is registered before the commands go out
    await client.send(_program(other), timeout_s=90)
    await client.send(_program(mine), timeout_s=90)
    await client.send(
        ExecuteProgram(program_id=mine, inputs={"question": "q", "context": "c"}), timeout_s=90
    )
    await asyncio.wait_for(collector, 30)
    assert [r.type for r in seen] == ["ProgramRegistered", "ExecutionSucceeded"]
    assert all(r.program_id == mine for r in seen)


async def test_no_answer_in_time_raises_timeout(bootstrap_servers: str) -> None:
    # Topics exist but no worker reads them: the command is never answered.
    topics = Topics(f"t{uuid.uuid4().hex[:10]}.")
    await ensure_topics(bootstrap_servers, topics.all, partitions=1)
    async with DspyopsClient(bootstrap_servers, topic_prefix=topics.prefix) as client:
        with pytest.raises(CommandTimeoutError) as caught:
            await client.send(_program("qa"), id="cmd-timeout-1", timeout_s=1.0)
    assert caught.value.command_id == "cmd-timeout-1"
    assert isinstance(caught.value, TimeoutError)


async def test_missing_topics_are_named(bootstrap_servers: str) -> None:
    client = DspyopsClient(bootstrap_servers, topic_prefix=f"none{uuid.uuid4().hex[:8]}.")
    with pytest.raises(TopicsMissingError, match="results does not exist"):
        await client.start()


async def test_kafka_not_answering_is_a_connection_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = DspyopsClient(f"127.0.0.1:{port}", connect_timeout_s=3)
    with pytest.raises(ConnectionError, match="does not answer"):
        await client.start()
