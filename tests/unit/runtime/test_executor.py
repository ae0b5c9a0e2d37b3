"""execute_program: outputs, usage, latency and one error code per failure kind."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import dspy
import pytest
from dspy import lm15
from dspy.utils import DummyLM
from dspy.utils.exceptions import LMTransportError

from dspyops.runtime import executor
from dspyops.runtime.executor import (
    ExecutionOutcome,
    configure_dspy_for_workers,
    execute_program,
)
from dspyops.runtime.lm_errors import LMErrors, classify
from dspyops.runtime.redaction import Redactor
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

QUESTION = {"question": "What is the capital of France?"}

# Failures told as the worker tells them, with nothing configured to redact.
ERRORS = LMErrors("test", Redactor())


def qa_signature() -> type[dspy.Signature]:
    return dspy.make_signature(
        {
            "question": (str, dspy.InputField()),
            "answer": (str, dspy.OutputField()),
            "confidence": (float, dspy.OutputField()),
        },
        "Answer the question.",
    )


async def run(module: dspy.Module, lm: dspy.BaseLM, timeout_s: float = 5) -> ExecutionOutcome:
    return await execute_program(module, dict(QUESTION), lm, timeout_s=timeout_s, errors=ERRORS)


async def test_predict_success_has_typed_outputs_and_measures() -> None:
    lm = DummyLM([{"answer": "Paris", "confidence": "0.9"}])

    outcome = await run(dspy.Predict(qa_signature()), lm)

    assert outcome.ok, outcome.error_message
    assert outcome.outputs == {"answer": "Paris", "confidence": 0.9}
    assert isinstance(outcome.outputs["confidence"], float)
    assert outcome.error_code is None
    assert outcome.error_message is None
    assert outcome.model == "dummy"
    assert outcome.lm_calls == 1
    assert outcome.usage.model_dump() == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
    }
    assert 0 < outcome.latency_ms < 5000


async def test_outcome_is_frozen_and_json_able() -> None:
    outcome = await run(dspy.Predict(qa_signature()), DummyLM([{"answer": "a", "confidence": 1}]))

    with pytest.raises(ValueError, match="frozen"):
        outcome.ok = False
    assert ExecutionOutcome.model_validate_json(outcome.model_dump_json()) == outcome


async def test_chain_of_thought_returns_reasoning() -> None:
    lm = DummyLM([{"reasoning": "It is well known.", "answer": "Paris", "confidence": 0.8}])

    outcome = await run(dspy.ChainOfThought(qa_signature()), lm)

    assert outcome.ok, outcome.error_message
    assert outcome.outputs == {
        "reasoning": "It is well known.",
        "answer": "Paris",
        "confidence": 0.8,
    }


async def test_unparseable_reply_is_output_parse_error() -> None:
    # ChatAdapter fails, then its JSONAdapter fallback consumes the second reply.
    lm = DummyLM([{"wrong": "x"}, {"wrong": "y"}])

    outcome = await run(dspy.Predict(qa_signature()), lm)

    assert not outcome.ok
    assert outcome.error_code == "output_parse_error"
    assert outcome.outputs is None
    assert "answer" in (outcome.error_message or "")


async def test_wrongly_typed_output_is_output_parse_error() -> None:
    lm = ScriptedLM(chat_reply(answer="Paris", confidence="very sure"))

    outcome = await run(dspy.Predict(qa_signature()), lm)

    assert outcome.error_code == "output_parse_error"


async def test_usage_counts_billed_tokens_of_a_failed_execution() -> None:
    lm = ScriptedLM("no fields at all", usage=(7, 3))

    outcome = await run(dspy.Predict(qa_signature()), lm)

    assert outcome.error_code == "output_parse_error"
    # Two calls: the ChatAdapter attempt and its JSONAdapter fallback.
    assert outcome.lm_calls == 2
    assert outcome.usage.model_dump() == {
        "prompt_tokens": 14,
        "completion_tokens": 6,
        "total_tokens": 20,
    }


async def test_usage_is_summed_from_the_lm() -> None:
    lm = ScriptedLM(chat_reply(answer="Paris", confidence=0.9), usage=(11, 4))

    outcome = await run(dspy.Predict(qa_signature()), lm)

    assert outcome.ok, outcome.error_message
    assert outcome.model == "scripted"
    assert outcome.usage.model_dump() == {
        "prompt_tokens": 11,
        "completion_tokens": 4,
        "total_tokens": 15,
    }


async def test_slow_lm_is_lm_timeout_and_returns_at_the_deadline() -> None:
    lm = ScriptedLM(chat_reply(answer="late", confidence=0.1), delay_s=5)

    start = time.monotonic()
    outcome = await run(dspy.Predict(qa_signature()), lm, timeout_s=0.1)

    assert outcome.error_code == "lm_timeout"
    assert "0.1" in (outcome.error_message or "")
    assert time.monotonic() - start < 2
    assert 90 <= outcome.latency_ms < 2000


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (lm15.RateLimitError("slow down", retry_after=0), "lm_rate_limited"),
        (lm15.TimeoutError("provider timed out"), "lm_timeout"),
        (lm15.ContextLengthError("prompt too long"), "context_window_exceeded"),
        (lm15.AuthError("bad key"), "lm_error"),
        (lm15.ServerError("boom"), "lm_error"),
        (RuntimeError("engine bug"), "lm_error"),
    ],
)
async def test_lm_failures_map_to_error_codes(error: Exception, code: str) -> None:
    lm = ScriptedLM("unused", error=error)

    outcome = await run(dspy.Predict(qa_signature()), lm)

    assert not outcome.ok
    assert outcome.error_code == code
    assert outcome.error_message


class Broken(dspy.Module):
    async def aforward(self, **kwargs: Any) -> dspy.Prediction:
        raise KeyError("our own bug")


async def test_a_bug_outside_the_lm_is_internal_error() -> None:
    outcome = await run(Broken(), DummyLM([]))

    assert outcome.error_code == "internal_error"
    assert "our own bug" in (outcome.error_message or "")


def foreign(module: str, name: str) -> Exception:
    cls = type(name, (Exception,), {"__module__": module})
    return cls("from a provider SDK")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (foreign("litellm.exceptions", "Timeout"), "lm_timeout"),
        (foreign("litellm.exceptions", "RateLimitError"), "lm_rate_limited"),
        (foreign("litellm.exceptions", "ContextWindowExceededError"), "context_window_exceeded"),
        (foreign("litellm.exceptions", "APIConnectionError"), "lm_error"),
        (foreign("openai", "APITimeoutError"), "lm_timeout"),
        (foreign("myapp", "RateLimitError"), "internal_error"),
        (ValueError("x"), "internal_error"),
    ],
)
def test_classify_recognises_untranslated_sdk_errors(exc: Exception, code: str) -> None:
    assert classify(exc) == code


def test_a_transport_error_caused_by_a_read_timeout_is_lm_timeout() -> None:
    timed_out = LMTransportError("read timed out")
    timed_out.__cause__ = foreign("dspy._vendor.lm15.transports", "ReadTimeout")
    refused = LMTransportError("connection refused")
    refused.__cause__ = ConnectionRefusedError()

    assert classify(timed_out) == "lm_timeout"
    assert classify(refused) == "lm_error"


async def test_cancellation_propagates() -> None:
    lm = ScriptedLM(chat_reply(answer="a", confidence=0.1), delay_s=5)
    task = asyncio.create_task(run(dspy.Predict(qa_signature()), lm))
    await asyncio.sleep(0.05)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_hundred_executions_run_concurrently_without_a_thread_each() -> None:
    lm = ScriptedLM(chat_reply(answer="Paris", confidence=0.9), delay_s=0.2)
    module = dspy.Predict(qa_signature())
    peak_threads = threading.active_count()

    async def sample_threads() -> None:
        nonlocal peak_threads
        while True:
            peak_threads = max(peak_threads, threading.active_count())
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample_threads())
    start = time.monotonic()
    outcomes = await asyncio.gather(*(run(module, lm, timeout_s=10) for _ in range(100)))
    elapsed = time.monotonic() - start
    sampler.cancel()

    assert all(o.ok for o in outcomes), {o.error_message for o in outcomes}
    assert lm.engine_state.peak_in_flight == 100
    assert elapsed < 3, f"100 x 200 ms took {elapsed:.2f} s: calls did not overlap"
    # DSPy hops through the default executor (bounded) around each call; never 100.
    assert peak_threads < 60


async def test_hundred_concurrent_dummy_lm_executions() -> None:
    answers = [{"answer": f"a{i}", "confidence": i / 100} for i in range(100)]
    lm = DummyLM(answers)
    module = dspy.Predict(qa_signature())

    outcomes = await asyncio.gather(*(run(module, lm) for _ in range(100)))

    assert all(o.ok for o in outcomes)
    assert sorted(str(o.outputs["answer"]) for o in outcomes if o.outputs) == sorted(
        str(a["answer"]) for a in answers
    )


def test_configure_dspy_for_workers_disables_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "_configured", False)
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    try:
        configure_dspy_for_workers(keep_history=True)
        configure_dspy_for_workers()  # a second call changes nothing

        assert dspy.cache.enable_disk_cache is False
        assert dspy.cache.enable_memory_cache is False
        assert dspy.settings.disable_history is False
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)


async def test_each_execution_keeps_its_dspy_trace_to_itself() -> None:
    """DSPy appends every prediction to `settings.trace`; an execution has a list of its
    own, so the process-wide one neither grows with the executions (up to 10,000 kept,
    inputs and all) nor mixes executions running at once."""
    before = list(dspy.settings.trace or [])
    seen: list[int] = []

    class Twice(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict(qa_signature())

        async def aforward(self, question: str) -> dspy.Prediction:
            await self.predict.acall(question=question)
            seen.append(len(dspy.settings.trace))
            await asyncio.sleep(0.01)  # the other executions run meanwhile
            return await self.predict.acall(question=question)

    replies = [{"answer": "Paris", "confidence": "0.9"}] * 6
    outcomes = await asyncio.gather(*(run(Twice(), DummyLM(replies)) for _ in range(3)))
    assert all(outcome.ok for outcome in outcomes), outcomes
    assert seen == [1, 1, 1]  # each saw its own first prediction only
    assert list(dspy.settings.trace or []) == before
