"""A judge program as the metric of an EvaluateProgram, through Kafka with the worker in
this process, then the projector and the read API: the evaluation is scored by the
judge, and the judge's calls are executions in the judge program's metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dspyops.consumers.judges import judge_execution_id
from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.judges import EXAMPLES, GRADER, QA, TwoProfiles
from tests.support.kafka import TopicReader, command
from tests.support.optimization import send_and_wait
from tests.support.worker_stack import drop_schema, read_api, settings_for, stack_env


@pytest.fixture
def settings_for_test(bootstrap_servers: str, database_url: str, unique: str) -> Iterator[Settings]:
    env = stack_env(bootstrap_servers, database_url, unique)
    settings = settings_for(env)
    assert settings.topic_prefix == f"t{unique}."  # never the shared default topics
    yield settings
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


async def test_an_evaluation_judged_by_a_program_counts_in_the_judges_metrics(
    settings_for_test: Settings, unique: str
) -> None:
    settings = settings_for_test
    qa, grader, dataset = f"qa-{unique}", f"grader-{unique}", f"sums-{unique}"
    await prepare_topics(settings)
    worker = build_worker_app(settings, profiles=TwoProfiles(), relay=False)
    topics = Topics(settings.topic_prefix)
    setup = [
        command("RegisterProgram", {"program_id": qa, "name": "qa", "signature": QA}),
        command(
            "RegisterProgram",
            {"program_id": grader, "name": "grader", "signature": GRADER, "lm": "judge"},
        ),
        command(
            "RegisterDataset",
            {"dataset_id": dataset, "name": "sums", "examples": EXAMPLES, "dev_fraction": 0.5},
        ),
    ]
    evaluate = command(
        "EvaluateProgram",
        {"program_id": qa, "dataset_id": dataset, "metric": f"judge:{grader}"},
    )
    await worker.start()
    try:
        async with TopicReader(settings.bootstrap_servers, topics.results) as results:
            registered = await send_and_wait(settings, topics, results, *setup)
            assert all(
                r["type"] != "dspyops.result.CommandRejected" for r in registered.values()
            ), registered
            ended = (await send_and_wait(settings, topics, results, evaluate))[evaluate.id]
    finally:
        await worker.stop()

    assert ended["type"] == "dspyops.result.EvaluationCompleted", ended
    examples = ended["data"]["examples"]
    assert examples >= 1
    # "42" for n >= 2 is judged 1 of 5 (0.0), a right sum 5 of 5 (1.0).
    assert 0.0 <= ended["data"]["score"] <= 1.0

    read_schema = f"read_{unique}"
    try:
        with read_api(settings, read_schema) as client:
            judged = client.get(f"/programs/{grader}/metrics").json()
            first = client.get(f"/executions/{judge_execution_id(evaluate.id, 1)}").json()
            judged_program = client.get(f"/programs/{qa}/metrics").json()
    finally:
        drop_schema(settings.effective_database_url, read_schema)

    overall = judged["overall"]
    assert (overall["count"], overall["succeeded"]) == (examples, examples)
    assert overall["cost_usd"] == pytest.approx(examples * (100 * 1.0 + 10 * 2.0) / 1e6)
    assert first["program_id"] == grader
    assert first["status"] == "succeeded"
    assert first["outputs"]["rationale"] in ("matches", "wrong sum")
    # The evaluated program's own calls are a run's, not executions.
    assert judged_program["overall"]["count"] == 0
