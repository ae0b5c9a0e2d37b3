"""PromoteExecutions through Kafka and a real `dspyops worker`: executions (one corrected by
feedback) become a dataset's examples with their source ids, once each, by the client and
by the `dspyops promote` CLI; an unknown execution is rejected at its place."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from dspyops.bootstrap import open_store
from dspyops.client import CommandRejectedError, DspyopsClient
from dspyops.events.commands import (
    ExecuteProgram,
    PromoteExecutions,
    RecordFeedback,
    RegisterDataset,
    RegisterProgram,
)
from dspyops.events.results import (
    DatasetRegistered,
    ExecutionsPromoted,
    ExecutionSucceeded,
    FeedbackRecorded,
)
from tests.integration.test_feedback_kafka import SIGNATURE, _cli, client, worker_env

__all__ = ["client", "worker_env"]  # the fixtures, shared with the feedback test

CORRECTED = {"answer": "Paris", "confidence": 1.0}


async def test_promote_through_kafka(
    client: DspyopsClient, worker_env: dict, database_url: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    program_id, dataset_id = f"qa-{suffix}", f"prod-{suffix}"
    register = RegisterProgram(program_id=program_id, name="QA", signature=SIGNATURE, lm="offline")
    await client.send(register, timeout_s=90)
    ids = []
    for question in ("Capital of France?", "Capital of Peru?"):
        command = ExecuteProgram(program_id=program_id, inputs={"question": question})
        ids.append((await client.send(command, timeout_s=90)).expect(ExecutionSucceeded))
    first, second = (e.execution_id for e in ids)
    fixed = RecordFeedback(execution_id=first, score=0.0, corrected_outputs=CORRECTED)
    (await client.send(fixed, timeout_s=90)).expect(FeedbackRecorded)
    registered = RegisterDataset(dataset_id=dataset_id, name="From production")
    (await client.send(registered, timeout_s=90)).expect(DatasetRegistered)

    promote = PromoteExecutions(dataset_id=dataset_id, execution_ids=[first, second])
    promoted = (await client.send(promote, timeout_s=90)).expect(ExecutionsPromoted)
    assert (promoted.appended, promoted.skipped, promoted.size) == (2, 0, 2)

    unknown = PromoteExecutions(dataset_id=dataset_id, execution_ids=[first, "no-such-run"])
    with pytest.raises(CommandRejectedError) as caught:
        await client.send(unknown, timeout_s=90)
    assert [(e.loc, e.type) for e in caught.value.errors] == [(["execution_ids", 1], "not_found")]

    # The CLI sends ids as given; both are in already: skipped, nothing appended.
    done = _cli(worker_env, "promote", dataset_id, "-e", second, "-e", first, "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["type"] == "dspyops.result.ExecutionsPromoted"
    assert (answer["data"]["appended"], answer["data"]["skipped"]) == (0, 2)

    # In the event store: the corrected outputs won, and each example names its source.
    app = open_store(database_url, worker_env["DSPYOPS_EVENT_STORE_SCHEMA"])
    try:
        dataset = app.dataset(dataset_id)
        assert dataset.sources == [first, second]
        assert dataset.examples[0] == {"question": "Capital of France?", **CORRECTED}
        assert dataset.examples[1]["question"] == "Capital of Peru?"
    finally:
        app.close()
