"""Spans from DSPy's worker threads: a module that fans out with `dspy.Parallel` records
each parallel predictor call, and its LM call with its tokens, under the module's span
(runtime.dspy_threads), and every LM call of every thread counts in the execution."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import dspy
from dspy.lm15 import Request

from dspyops.runtime.executor import execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.offline import output_fields
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.trace import UsageTo
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

DRAFTS = 4


class FanOut(dspy.Module):
    """Drafts in parallel threads, then one pick: the shape of a plugin using Parallel."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.pick = dspy.Predict("question, drafts: list[str] -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        parallel = dspy.Parallel(num_threads=DRAFTS, disable_progress_bar=True)
        drafts = parallel([(self.draft, {"question": f"{question} {n}"}) for n in range(DRAFTS)])
        return self.pick(question=question, drafts=[d.answer for d in drafts])

    async def aforward(self, question: str) -> dspy.Prediction:
        return await asyncio.to_thread(self.forward, question=question)


def reply(request: Request) -> str:
    return chat_reply(**{name: "x" for name in output_fields(request)})


def walk(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [span, *(s for child in span.get("children", []) for s in walk(child))]


async def test_spans_from_parallel_threads_nest_under_the_module_that_started_them() -> None:
    lm = ScriptedLM(reply, usage=(10, 5))
    errors = LMErrors("test", Redactor())

    outcome = await execute_program(FanOut(), {"question": "Q"}, lm, timeout_s=20, errors=errors)

    assert outcome.ok, outcome.error_message
    trace = outcome.trace
    assert trace is not None
    assert (trace["kind"], trace["name"]) == ("program", "program")
    children = [(s["kind"], s["name"]) for s in trace["children"]]
    assert children == [("predictor", "draft")] * DRAFTS + [("predictor", "pick")]
    for predictor in trace["children"]:
        (lm_span,) = predictor["children"]
        assert lm_span["kind"] == "lm"
        # Each thread's usage went to its own LM span.
        assert lm_span["usage"]["total_tokens"] == 15
        assert lm_span["start_ms"] >= predictor["start_ms"]
    assert len([s for s in walk(trace) if s["kind"] == "lm"]) == DRAFTS + 1
    # Every LM call of every thread is in the execution's usage.
    assert outcome.lm_calls == DRAFTS + 1
    assert outcome.usage.total_tokens == 15 * (DRAFTS + 1)


def test_the_usage_tracker_is_shared_not_copied() -> None:
    seen: list[dict[str, Any]] = []
    tracker = UsageTo(seen.append)
    assert copy.deepcopy(tracker) is tracker
