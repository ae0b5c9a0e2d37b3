"""CancelGate through Kafka: a gated deploy whose LM is slow is cancelled while its gate
scores; both commands end with GateCancelled and production never moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dspyops.aggregates.app.gates import CURRENT, gate_run_id
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.ids import evaluation_uuid
from dspyops.bootstrap import open_store
from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import chat_reply
from tests.support.optimization import (
    ScriptedProfiles,
    register_commands,
    send_and_wait,
    settings_for_test,
)
from tests.support.scripted_lm import ScriptedLM

__all__ = ["settings_for_test"]  # fixture


@pytest.fixture
async def slow_stack(settings_for_test: Settings) -> AsyncIterator[tuple[Settings, Topics]]:
    """The worker in this process; every LM call takes a second."""
    settings = settings_for_test
    await prepare_topics(settings)
    lm = ScriptedLM(chat_reply(answer="9"), delay_s=1.0)
    app = build_worker_app(settings, profiles=ScriptedProfiles(lm), relay=False)
    await app.start()
    try:
        yield settings, Topics(settings.topic_prefix)
    finally:
        await app.stop()


async def test_a_gate_cancelled_while_it_scores_applies_nothing(
    slow_stack: tuple[Settings, Topics], unique: str
) -> None:
    settings, topics = slow_stack
    program_id, dataset_id = f"add-{unique}", f"sums-{unique}"
    register, dataset = register_commands(unique)
    update = command("UpdateProgram", {"program_id": program_id, "instructions": "Be brief."})
    first = command("DeployProgram", {"program_id": program_id, "version": 1})
    gated = command(
        "DeployProgram",
        {"program_id": program_id, "version": 2, "gate": {"dataset_id": dataset_id}},
    )
    cancel = command("CancelGate", {"program_id": program_id, "command_id": gated.id})
    store = open_store(settings.effective_database_url, settings.event_store_schema)
    try:
        async with TopicReader(settings.bootstrap_servers, topics.results) as results:
            await send_and_wait(settings, topics, results, register, dataset)
            await send_and_wait(settings, topics, results, update)
            await send_and_wait(settings, topics, results, first)
            await send_commands(settings.bootstrap_servers, topics, [gated])
            # The gate has started once its runs are stored; its LM calls take seconds.
            run = evaluation_uuid(gate_run_id(gated.id, CURRENT))
            for _ in range(300):
                if store.find(Evaluation, run) is not None:
                    break
                await asyncio.sleep(0.1)
            await send_commands(settings.bootstrap_servers, topics, [cancel])
            found = await results.results_for([gated.id, cancel.id], timeout_s=120)
        program = store.program(program_id)
        statuses = {
            store.evaluation(i).status for i in found[cancel.id][0]["data"]["evaluation_ids"]
        }
    finally:
        store.close()

    for command_id in (gated.id, cancel.id):
        (result,) = found[command_id]
        assert result["type"] == "dspyops.result.GateCancelled", result
        assert result["data"]["command_id"] == gated.id
    assert statuses == {"cancelled"}
    assert program.deployed_version == 1
