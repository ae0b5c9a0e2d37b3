"""execute_program over real HTTP: dspy.LM -> lm15/LiteLLM -> a local OpenAI-compatible server.

Retries, timeouts and usage accounting here are DSPy's real ones. DSPy owns retries
(``num_retries`` on the LM); it waits the server's ``Retry-After`` when given (the test
server sends 0), else 2**attempt seconds, so tests that retry without a hint stay out.
Needs no Kafka or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import dspy
import pytest

from dspyops.runtime.executor import ExecutionOutcome, execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.modules import build_module
from dspyops.runtime.profiles import ProfileRegistry, load_profiles
from dspyops.runtime.redaction import Redactor
from tests.support.openai_server import OpenAIServer, chat_reply

QUESTION = "What is the capital of France?"

# Failures told as the worker tells them, with nothing configured to redact.
ERRORS = LMErrors("test", Redactor())


@pytest.fixture(autouse=True)
def _no_price_map_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def qa_signature() -> type[dspy.Signature]:
    return dspy.make_signature(
        {
            "question": (str, dspy.InputField()),
            "answer": (str, dspy.OutputField()),
            "confidence": (float, dspy.OutputField()),
        },
        "Answer the question about geography.",
    )


def paris(messages: list[dict[str, Any]]) -> str:
    return chat_reply(answer="Paris", confidence=0.9)


def http_lm(srv: OpenAIServer, *, num_retries: int = 2, timeout_s: float = 5) -> dspy.BaseLM:
    """The LM the way a profile builds it, pointed at the test server."""
    config = {
        "local": {
            "model": "openai/test-model",
            "api_base": srv.base_url,
            "api_key_env": "DSPYOPS_TEST_LM_KEY",
            "num_retries": num_retries,
            "timeout_s": timeout_s,
        }
    }
    return ProfileRegistry(load_profiles(json.dumps(config))).build_lm("local")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPYOPS_TEST_LM_KEY", "test-key-from-env")


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(paris) as srv:
        yield srv


async def ask(lm: dspy.BaseLM, *, kind: str = "Predict", timeout_s: float = 10) -> ExecutionOutcome:
    module = build_module(kind, qa_signature())
    return await execute_program(
        module, {"question": QUESTION}, lm, timeout_s=timeout_s, errors=ERRORS
    )


async def test_outputs_usage_and_prompt_over_http(server: OpenAIServer) -> None:
    outcome = await ask(http_lm(server))

    assert outcome.ok, outcome.error_message
    assert outcome.outputs == {"answer": "Paris", "confidence": 0.9}
    assert outcome.model == "openai/test-model"
    assert outcome.lm_calls == 1
    [reported] = server.usages
    assert outcome.usage.model_dump() == reported
    assert reported["prompt_tokens"] > 0
    [request] = server.requests
    assert request["model"] == "test-model"
    prompt = json.dumps(request["messages"])
    assert QUESTION in prompt
    assert "Answer the question about geography." in prompt
    assert server.headers[0]["authorization"] == "Bearer test-key-from-env"


async def test_chain_of_thought_over_http() -> None:
    def reply(messages: list[dict[str, Any]]) -> str:
        return chat_reply(reasoning="France's capital is Paris.", answer="Paris", confidence=1.0)

    with OpenAIServer(reply, usage=(40, 12)) as srv:
        outcome = await ask(http_lm(srv), kind="ChainOfThought")

    assert outcome.ok, outcome.error_message
    assert outcome.outputs == {
        "reasoning": "France's capital is Paris.",
        "answer": "Paris",
        "confidence": 1.0,
    }
    assert outcome.usage.model_dump() == {
        "prompt_tokens": 40,
        "completion_tokens": 12,
        "total_tokens": 52,
    }


async def test_rate_limited_once_then_answered() -> None:
    with OpenAIServer(paris, rate_limit_first=1) as srv:
        outcome = await ask(http_lm(srv, num_retries=2))

    assert outcome.ok, outcome.error_message
    assert len(srv.requests) == 2
    assert srv.rate_limited == 1
    assert outcome.usage.model_dump() == srv.usages[0]


async def test_rate_limited_on_every_attempt() -> None:
    with OpenAIServer(paris, rate_limit_first=100) as srv:
        outcome = await ask(http_lm(srv, num_retries=2))

    assert outcome.error_code == "lm_rate_limited"
    assert len(srv.requests) == 3
    assert outcome.usage.total_tokens == 0


async def test_client_timeout_is_lm_timeout() -> None:
    with OpenAIServer(paris, hang_s=10) as srv:
        start = time.monotonic()
        outcome = await ask(http_lm(srv, num_retries=0, timeout_s=0.3))
        elapsed = time.monotonic() - start

    assert outcome.error_code == "lm_timeout"
    assert elapsed < 3
    assert len(srv.requests) == 1


async def test_execution_deadline_is_lm_timeout() -> None:
    with OpenAIServer(paris, delay_s=10) as srv:
        start = time.monotonic()
        outcome = await ask(http_lm(srv, timeout_s=30), timeout_s=0.3)
        elapsed = time.monotonic() - start

    assert outcome.error_code == "lm_timeout"
    assert "0.3" in (outcome.error_message or "")
    assert elapsed < 3


async def test_unreachable_server_is_lm_error() -> None:
    with OpenAIServer(paris) as srv:
        lm = http_lm(srv, num_retries=0)
    # The server is gone: the port refuses connections.

    outcome = await ask(lm)

    assert outcome.error_code == "lm_error"
    assert outcome.error_message


async def test_junk_reply_is_output_parse_error_with_usage() -> None:
    with OpenAIServer(lambda messages: "I would rather not say.", usage=(30, 5)) as srv:
        outcome = await ask(http_lm(srv))

    assert outcome.error_code == "output_parse_error"
    # ChatAdapter's attempt, then its JSONAdapter fallback: both billed.
    assert len(srv.requests) == 2
    assert outcome.usage.model_dump() == {
        "prompt_tokens": 60,
        "completion_tokens": 10,
        "total_tokens": 70,
    }


async def test_concurrent_http_executions_overlap() -> None:
    with OpenAIServer(paris, delay_s=0.3) as srv:
        lm = http_lm(srv)
        start = time.monotonic()
        outcomes = await asyncio.gather(*(ask(lm) for _ in range(100)))
        elapsed = time.monotonic() - start

    assert all(o.ok for o in outcomes), {o.error_message for o in outcomes}
    assert len(srv.requests) == 100
    assert elapsed < 2, f"100 x 300 ms took {elapsed:.2f} s: requests did not overlap"
