"""The per-producer rate limit through Kafka, with the worker in this process.

`DSPYOPS_COMMAND_RATE_LIMIT=3/minute`: a runaway producer's fourth and fifth commands are
refused (`rate_limited`, with the wait), another producer's go on, and nothing is
recorded for a refused command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from dspyops.aggregates.errors import NotFound
from dspyops.bootstrap import open_store
from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.envelope import Envelope, result_id
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command
from tests.support.optimization import send_and_wait
from tests.support.worker_stack import drop_schema, settings_for, stack_env

SIGNATURE = "question: str -> answer: str"


@pytest.fixture
def limited(bootstrap_servers: str, database_url: str, unique: str) -> Iterator[Settings]:
    env = {
        **stack_env(bootstrap_servers, database_url, unique),
        "DSPYOPS_COMMAND_RATE_LIMIT": "3/minute",
    }
    settings = settings_for(env)
    assert settings.command_rate_limit == "3/minute"
    yield settings
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


def _register(program_id: str, source: str) -> Envelope:
    data = {"program_id": program_id, "name": "qa", "signature": SIGNATURE}
    return command("RegisterProgram", data, source=source)


async def test_a_runaway_producer_is_limited_and_the_others_are_not(
    limited: Settings, unique: str
) -> None:
    settings = limited
    await prepare_topics(settings)
    worker = build_worker_app(settings, relay=False)
    topics = Topics(settings.topic_prefix)
    runaway = [_register(f"r{n}-{unique}", "urn:runaway") for n in range(5)]
    other = _register(f"o-{unique}", "urn:other")
    await worker.start()
    try:
        async with TopicReader(settings.bootstrap_servers, topics.results) as results:
            found = await send_and_wait(settings, topics, results, *runaway, other)
    finally:
        await worker.stop()

    outcomes = Counter(found[c.id]["type"].rsplit(".", 1)[-1] for c in runaway)
    assert outcomes == {"ProgramRegistered": 3, "CommandRejected": 2}, found
    assert found[other.id]["type"] == "dspyops.result.ProgramRegistered"
    refused = [found[c.id]["data"] for c in runaway if found[c.id]["type"].endswith("Rejected")]
    # Not recorded: the same id may come again and end otherwise, so a refusal's result id
    # is its own, not the id the command's stored rejection would have.
    for c in runaway:
        if found[c.id]["type"].endswith("Rejected"):
            assert found[c.id]["id"] != result_id(c.id, "CommandRejected")
    for rejection in refused:
        (error,) = rejection["errors"]
        assert (error["loc"], error["type"]) == (["source"], "rate_limited")
        assert error["ctx"]["producer"] == "urn:runaway"
        assert 0 < error["ctx"]["retry_after_s"] <= 60
    # Nothing of a refused command is in the store: its program does not exist.
    store = open_store(settings.effective_database_url, settings.event_store_schema)
    try:
        refused_ids = [c.subject for c in runaway if found[c.id]["type"].endswith("Rejected")]
        assert len(refused_ids) == 2
        for program_id in refused_ids:
            assert program_id is not None
            with pytest.raises(NotFound):
                store.program(program_id)
    finally:
        store.close()
