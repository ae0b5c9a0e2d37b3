"""RecordFeedback through Kafka and a real `dspyops worker`: by the client and by the CLI,
accepted on a finished execution, rejected with the field at fault, kept in its history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dspyops.client import CommandRejectedError, DspyopsClient
from dspyops.events.commands import ExecuteProgram, RecordFeedback, RegisterProgram
from dspyops.events.results import ExecutionSucceeded, FeedbackRecorded
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import drop_schema, stack_env, started_client, stored_events

SIGNATURE = "question: str -> answer: str, confidence: float[0, 1]"


@pytest.fixture(scope="module")
def worker_env(bootstrap_servers: str, database_url: str, tmp_path_factory) -> Iterator[dict]:
    env = stack_env(bootstrap_servers, database_url, uuid.uuid4().hex[:10])
    with WorkerProcess(env, tmp_path_factory.mktemp("feedback") / "worker.log"):
        yield env
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


@pytest.fixture
async def client(worker_env: dict) -> AsyncIterator[DspyopsClient]:
    async with started_client(worker_env, "reviewer@example.com") as c:
        yield c


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_feedback_through_kafka(
    client: DspyopsClient, worker_env: dict, database_url: str
) -> None:
    program_id = f"qa-{uuid.uuid4().hex[:8]}"
    register = RegisterProgram(program_id=program_id, name="QA", signature=SIGNATURE, lm="offline")
    await client.send(register, timeout_s=90)
    reply = await client.send(ExecuteProgram(program_id=program_id, inputs={"question": "q?"}))
    execution_id = reply.expect(ExecutionSucceeded).execution_id

    given = RecordFeedback(
        execution_id=execution_id,
        score=0.25,
        label="wrong",
        corrected_outputs={"answer": "Paris", "confidence": 1.0},
    )
    recorded = (await client.send(given, timeout_s=90)).expect(FeedbackRecorded)
    assert (recorded.number, recorded.program_id, recorded.version) == (1, program_id, 1)

    rejections = [
        (RecordFeedback(execution_id=execution_id, score=1.5), ["score"], "out_of_range"),
        (
            RecordFeedback(execution_id=execution_id, corrected_outputs={"answer": "Paris"}),
            ["corrected_outputs", "confidence"],
            "missing",
        ),
        (RecordFeedback(execution_id="no-such-run", score=0.5), ["execution_id"], "not_found"),
    ]
    for command, loc, error_type in rejections:
        with pytest.raises(CommandRejectedError) as caught:
            await client.send(command, timeout_s=90)
        assert [(e.loc, e.type) for e in caught.value.errors] == [(loc, error_type)]

    # The CLI publishes the same command; its result comes back as JSON.
    done = _cli(worker_env, "feedback", execution_id, "--score", "1", "--json", "--actor", "cli")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["type"] == "dspyops.result.FeedbackRecorded"
    assert (answer["data"]["number"], answer["data"]["score"], answer["actor"]) == (2, 1.0, "cli")

    # Kept in the execution's own history, after its ending.
    history = [topic.rsplit(".", 1)[-1] for _, _, topic in _events_of(worker_env, database_url)]
    assert history[-2:] == ["FeedbackRecorded", "FeedbackRecorded"]
    assert history.count("FeedbackRecorded") == 2


def _events_of(env: dict[str, str], database_url: str) -> list[tuple[str, int, str]]:
    events = stored_events(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])
    return [e for e in events if "Execution" in e[2]]
