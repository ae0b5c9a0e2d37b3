"""The worker's faust app run in this process with DSPy's own DummyLM behind the profile."""

from __future__ import annotations

from collections.abc import Iterator

import dspy
import pytest
from dspy.utils import DummyLM

from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.topics import Topics
from dspyops.runtime.profiles import LMProfile, ProfileRegistry
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.worker_stack import drop_schema, settings_for, stack_env

SIGNATURE = "question: str, context: str -> answer: str, confidence: float"


class DummyProfiles(ProfileRegistry):
    """The configured profile names, answered by one DummyLM."""

    def __init__(self, lm: dspy.BaseLM) -> None:
        super().__init__({"default": LMProfile(name="default", model="dummy/lm")})
        self._dummy = lm

    def build_lm(self, name: str) -> dspy.BaseLM:
        self.get(name)
        return self._dummy


@pytest.fixture
def settings_for_test(bootstrap_servers: str, database_url: str, unique: str) -> Iterator[Settings]:
    env = stack_env(bootstrap_servers, database_url, unique)
    settings = settings_for(env)
    assert settings.topic_prefix == f"t{unique}."  # never the shared default topics
    yield settings
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


async def test_execute_with_dummy_lm_returns_outputs_latency_and_usage(
    settings_for_test: Settings, unique: str
) -> None:
    settings = settings_for_test
    lm = DummyLM([{"answer": "Paris", "confidence": "0.75"}])
    await prepare_topics(settings)
    app = build_worker_app(settings, profiles=DummyProfiles(lm), relay=False)
    topics = Topics(settings.topic_prefix)
    register = command(
        "RegisterProgram", {"program_id": f"qa-{unique}", "name": "qa", "signature": SIGNATURE}
    )
    execute = command(
        "ExecuteProgram",
        {
            "program_id": f"qa-{unique}",
            "inputs": {"question": "Capital of France?", "context": "Europe"},
        },
        actor="alice@example.com",
    )
    await app.start()
    try:
        async with TopicReader(settings.bootstrap_servers, topics.results) as results:
            # Different topics are consumed independently: register first, then execute.
            await send_commands(settings.bootstrap_servers, topics, [register])
            await results.results_for([register.id], timeout_s=90)
            await send_commands(settings.bootstrap_servers, topics, [execute])
            found = await results.results_for([register.id, execute.id])
    finally:
        await app.stop()
    registered = found[register.id][0]
    assert registered["type"] == "dspyops.result.ProgramRegistered"
    assert registered["data"]["signature"] == SIGNATURE
    succeeded = found[execute.id][0]
    assert succeeded["type"] == "dspyops.result.ExecutionSucceeded"
    assert succeeded["causationid"] == execute.id
    assert succeeded["actor"] == "alice@example.com"
    data = succeeded["data"]
    assert data["outputs"] == {"answer": "Paris", "confidence": 0.75}
    assert data["latency_ms"] > 0
    # DummyLM reports zero tokens; the field is there and well-formed.
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert data["model"] == "dummy"
