"""The main loop as users see it: commands on Kafka, a worker process, an LM over HTTP.

The LM is an OpenAI-compatible server on 127.0.0.1 started by the test, so LiteLLM, HTTP,
token usage, a 429 retry and a timeout are all real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.worker_process import WorkerProcess

SIGNATURE = "question: str, context: str -> answer: str, confidence: float[0, 1]"


def _responder(messages: list[dict[str, Any]]) -> str:
    prompt = messages[-1]["content"]
    if "please time out" in prompt:
        time.sleep(4)
    if "answer with junk" in prompt:
        return "I refuse to follow the format."
    if "overconfident" in prompt:
        return chat_reply(answer="Paris", confidence=7.5)
    return chat_reply(answer="Paris", confidence=0.9)


@pytest.fixture
def stack_env(bootstrap_servers: str, database_url: str, unique: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "DATABASE_URL": database_url,
        "DSPYOPS_TOPIC_PREFIX": f"t{unique}.",
        "DSPYOPS_EVENT_STORE_SCHEMA": f"es_{unique}",
        "DSPYOPS_EXECUTION_CONCURRENCY": "20",
    }


async def test_register_execute_and_reject_through_a_worker_process(
    stack_env: dict[str, str], bootstrap_servers: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(stack_env["DSPYOPS_TOPIC_PREFIX"])
    await ensure_topics(bootstrap_servers, topics.all, partitions=4)
    with OpenAIServer(_responder, rate_limit_first=1, usage=(40, 9)) as lm_server:
        profiles = {
            "default": {
                "model": "openai/test-model",
                "api_base": lm_server.base_url,
                "api_key_env": "DSPYOPS_TEST_LM_KEY",
                "timeout_s": 2,
                "num_retries": 2,
            }
        }
        env = {
            **stack_env,
            "DSPYOPS_LM_PROFILES": json.dumps(profiles),
            "DSPYOPS_TEST_LM_KEY": "not-a-real-key",
        }
        register = command(
            "RegisterProgram",
            {"program_id": f"qa-{unique}", "name": "qa", "signature": SIGNATURE},
        )
        ok = _execute(unique, "What is the capital of France?")
        junk = _execute(unique, "answer with junk")
        overconfident = _execute(unique, "overconfident")
        slow = _execute(unique, "please time out")
        bad_inputs = command(
            "ExecuteProgram", {"program_id": f"qa-{unique}", "inputs": {"question": "no context"}}
        )
        unknown = command("ExecuteProgram", {"program_id": "nope", "inputs": {}})
        deprecate_draft = command("DeprecateProgram", {"program_id": f"qa-{unique}"})
        with WorkerProcess(env, tmp_path / "worker.log") as worker:
            async with TopicReader(bootstrap_servers, topics.results) as results:
                await send_commands(bootstrap_servers, topics, [register])
                await results.results_for([register.id], timeout_s=90)
                # One at a time so the 429 falls on the first execution.
                await send_commands(bootstrap_servers, topics, [ok])
                await results.results_for([ok.id])
                later = [junk, overconfident, slow, bad_inputs, unknown, deprecate_draft]
                await send_commands(bootstrap_servers, topics, later)
                found = await results.results_for([c.id for c in later])
            assert worker.alive(), worker.log()

    by_id = {cid: msgs for cid, msgs in found.items()}
    succeeded = results.messages
    ok_result = next(m for m in succeeded if m.get("causationid") == ok.id)
    assert ok_result["type"] == "dspyops.result.ExecutionSucceeded"
    assert ok_result["correlationid"] == ok.correlation_id
    data = ok_result["data"]
    assert data["outputs"] == {"answer": "Paris", "confidence": 0.9}
    assert data["usage"] == {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
    assert data["latency_ms"] > 0
    assert data["version"] == 1
    assert data["offline"] is False
    # The first call was answered 429 and retried by the client: two requests, one result.
    assert lm_server.rate_limited == 1

    def only(cmd_id: str) -> dict[str, Any]:
        assert len(by_id[cmd_id]) == 1, by_id[cmd_id]
        return by_id[cmd_id][0]

    assert only(junk.id)["data"]["error"]["code"] == "output_parse_error"
    failed = only(overconfident.id)
    assert failed["type"] == "dspyops.result.ExecutionFailed"
    assert failed["data"]["error"]["code"] == "output_invalid"
    assert only(slow.id)["data"]["error"]["code"] == "lm_timeout"
    rejected = only(bad_inputs.id)
    assert rejected["type"] == "dspyops.result.CommandRejected"
    assert any(e["loc"][-1] == "context" for e in rejected["data"]["errors"])
    assert only(unknown.id)["type"] == "dspyops.result.CommandRejected"
    illegal = only(deprecate_draft.id)
    assert illegal["type"] == "dspyops.result.CommandRejected"
    assert "draft" in json.dumps(illegal["data"]["errors"])


def _execute(unique: str, question: str) -> Any:
    return command(
        "ExecuteProgram",
        {"program_id": f"qa-{unique}", "inputs": {"question": question, "context": "Europe"}},
    )
