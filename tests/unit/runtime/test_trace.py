"""An execution's trace, recorded by dspyops' own traced classes (runtime.trace), not by DSPy
callbacks: the tree of steps, predictors, LM calls and tools; one tree per execution when
executions share a module; deep copies that trace themselves; redacted errors."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
from dspy.lm15 import Request

from dspyops.runtime.executor import ExecutionOutcome, execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.offline import output_fields
from dspyops.runtime.pipeline import Pipeline
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.trace import TraceRecorder
from dspyops.runtime.traced import instrument
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM
from tests.unit.runtime.test_pipeline import Corpus, pipeline

STEP_NAMES = ["query", "retrieve", "answer"]  # test_pipeline.STEPS
ERRORS = LMErrors("test", Redactor())
VALUES: dict[str, Any] = {"query": "capital", "reasoning": "r", "sources": ["d0"]}


def reply(request: Request) -> str:
    """Each predictor's own output fields; the answer echoes the question asked."""
    fields = {name: VALUES.get(name, "x") for name in output_fields(request)}
    if "answer" in fields:
        fields["answer"] = "A" if "Q-A" in str(request) else "B"
    return chat_reply(**fields)


async def execute(module: dspy.Module, lm: dspy.BaseLM, **inputs: Any) -> ExecutionOutcome:
    return await execute_program(module, inputs, lm, timeout_s=10, errors=ERRORS, steps=STEP_NAMES)


def walk(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [span, *(s for child in span.get("children", []) for s in walk(child))]


async def test_a_pipeline_trace_nests_steps_predictors_and_lm_calls() -> None:
    lm = ScriptedLM(reply, usage=(10, 5))

    outcome = await execute(pipeline(Corpus()), lm, question="Q-A")

    assert outcome.ok, outcome.error_message
    trace = outcome.trace
    assert trace is not None
    assert (trace["kind"], trace["name"], trace["type"]) == ("program", "program", "Pipeline")
    assert [(s["kind"], s["name"]) for s in trace["children"]] == [
        ("step", "query"),
        ("retrieval", "retrieve"),
        ("step", "answer"),
    ]
    query, retrieve, answer = trace["children"]
    assert [(s["kind"], s["model"]) for s in query["children"]] == [("lm", "scripted")]
    assert query["children"][0]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    assert query["inputs"] == {"question": "Q-A"}
    assert query["outputs"] == {"query": "capital"}
    assert (retrieve["corpus"], retrieve["document_ids"]) == ("docs", ["d0", "d1"])
    assert retrieve["children"] == []
    (predictor,) = answer["children"]
    assert (predictor["kind"], predictor["name"]) == ("predictor", "answer.predict")
    assert [s["kind"] for s in predictor["children"]] == ["lm"]
    assert trace["usage"]["total_tokens"] == 30
    assert all(s["latency_ms"] >= 0 and s["start_ms"] >= 0 for s in walk(trace))
    assert [(s["step"], s["total_tokens"]) for s in outcome.steps] == [
        ("query", 15),
        ("retrieve", 0),
        ("answer", 15),
    ]


async def test_tracing_sets_no_dspy_callbacks() -> None:
    # DSPy's callback dispatch costs a third of a pipeline's time (bench/bench_execute.py).
    module = pipeline(Corpus())
    active: list[list[Any]] = []

    def watching(request: Request) -> str:
        active.append(list(dspy.settings.callbacks))
        return reply(request)

    lm = ScriptedLM(watching)
    outcome = await execute(module, lm, question="Q-A")

    assert outcome.trace is not None
    assert active == [[], []]
    assert all(sub.callbacks == [] for _, sub in module.named_sub_modules())
    assert lm.callbacks == []


async def test_executions_sharing_a_module_each_get_their_own_tree() -> None:
    module = pipeline(Corpus())
    lm = ScriptedLM(reply, delay_s=0.01)

    outcomes = await asyncio.gather(
        *(execute(module, lm, question=f"Q-{'A' if n % 2 else 'B'}{n}") for n in range(10))
    )

    for n, outcome in enumerate(outcomes):
        assert outcome.ok, outcome.error_message
        trace = outcome.trace
        assert trace is not None
        spans = walk(trace)
        assert len([s for s in spans if s["kind"] == "lm"]) == 2, n
        assert trace["children"][0]["inputs"] == {"question": f"Q-{'A' if n % 2 else 'B'}{n}"}
        assert trace["children"][2]["outputs"]["answer"] == ("A" if n % 2 else "B")


async def test_a_deep_copy_traces_itself_not_the_original() -> None:
    original = instrument(pipeline(Corpus()), steps=STEP_NAMES)
    copy = original.deepcopy()
    copy.query.signature = copy.query.signature.with_instructions("COPY'S OWN INSTRUCTIONS")
    lm = ScriptedLM(reply)

    outcome = await execute(copy, lm, question="Q-A")

    assert outcome.ok, outcome.error_message
    assert outcome.trace is not None
    assert [s["name"] for s in outcome.trace["children"]] == STEP_NAMES
    # The copy ran its own predictor (its instructions reached the LM), traced.
    first_prompt = str(lm.engine_state.requests[0])
    assert "COPY'S OWN INSTRUCTIONS" in first_prompt


async def test_outside_an_execution_traced_classes_record_nothing() -> None:
    module = instrument(pipeline(Corpus()), steps=STEP_NAMES)
    recorder = TraceRecorder()

    with dspy.context(lm=ScriptedLM(reply)):
        outside = await module.acall(question="Q-A")  # no recording: runs as plain DSPy
        with recorder.recording():
            await module.acall(question="Q-B")

    assert outside.answer == "A"
    tree = recorder.tree()
    assert tree is not None
    # Only the recorded call is in the tree: one program span, its own question.
    assert tree["name"] == "program"
    assert tree["children"][0]["inputs"] == {"question": "Q-B"}


def test_a_sync_call_inside_recording_is_traced() -> None:
    module = instrument(pipeline(Corpus()), steps=STEP_NAMES)
    recorder = TraceRecorder()

    with dspy.context(lm=ScriptedLM(reply)), recorder.recording():
        module(question="Q-A")

    tree = recorder.tree()
    assert tree is not None
    assert [s["name"] for s in tree["children"]] == STEP_NAMES


class Tools(dspy.Module):
    """A ReAct agent whose tool fails with a message holding a secret."""

    def __init__(self) -> None:
        super().__init__()

        def leak(x: str) -> str:
            """Fails, saying too much."""
            raise RuntimeError("upstream said: sk-test-SECRET-123 is not allowed")

        signature = dspy.Signature("question -> answer")
        self.agent = dspy.ReAct(signature, tools=[dspy.Tool(leak, name="leak")], max_iters=2)

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.agent.acall(question=question)


async def test_a_tool_error_is_a_span_with_its_message_redacted() -> None:
    replies = iter(
        [
            chat_reply(next_thought="t", next_tool_name="leak", next_tool_args={"x": "1"}),
            chat_reply(next_thought="t", next_tool_name="finish", next_tool_args={}),
            chat_reply(reasoning="r", answer="done"),
        ]
    )
    lm = ScriptedLM(lambda request: next(replies))
    errors = LMErrors("test", Redactor({"sk-test-SECRET-123": "[REDACTED]"}))

    outcome = await execute_program(Tools(), {"question": "q"}, lm, timeout_s=10, errors=errors)

    assert outcome.ok, outcome.error_message
    assert outcome.trace is not None
    tools = [s for s in walk(outcome.trace) if s["kind"] == "tool"]
    assert [(s["name"], s["inputs"]) for s in tools] == [("leak", {"x": "1"}), ("finish", {})]
    error = tools[0]["error"]
    assert error["type"] == "RuntimeError"
    assert "sk-test-SECRET-123" not in error["message"]
    assert "upstream said: [REDACTED]" in error["message"]


async def test_a_failed_step_is_named_and_keeps_the_spans_before_it() -> None:
    def failing(request: Request) -> str:
        fields = output_fields(request)
        return "no sections at all" if "answer" in fields else reply(request)

    outcome = await execute(pipeline(Corpus()), ScriptedLM(failing), question="Q-A")

    assert not outcome.ok
    assert outcome.failed_step == "answer"
    assert outcome.trace is not None
    query, retrieve, answer = outcome.trace["children"]
    assert query["error"] is None
    assert retrieve["error"] is None
    assert answer["error"] is not None
    assert answer["children"][0]["name"] == "answer.predict"


def test_pipeline_steps_keep_their_class_names_in_the_trace() -> None:
    module = instrument(pipeline(Corpus()), steps=STEP_NAMES)
    assert isinstance(module, Pipeline)
    assert type(module.answer).__name__ == "ChainOfThought"
    assert isinstance(module.answer.predict, dspy.Predict)


class Odd(dspy.Module):
    """A sub-module given values JSON cannot hold (bytes that are not UTF-8, a cycle)."""

    def forward(self, blob: bytes, loop: list[Any]) -> dspy.Prediction:
        return dspy.Prediction(size=len(blob), loop=loop)


class OddProgram(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.odd = Odd()

    async def aforward(self, question: str) -> dspy.Prediction:
        loop: list[Any] = []
        loop.append(loop)
        return self.odd(blob=b"\xff\xfe", loop=loop)


async def test_values_a_trace_cannot_hold_do_not_fail_the_program() -> None:
    outcome = await execute_program(
        OddProgram(), {"question": "q"}, ScriptedLM(reply), timeout_s=10, errors=ERRORS
    )

    assert outcome.trace is not None
    odd = outcome.trace["children"][0]
    assert odd["name"] == "odd"
    assert odd["inputs"] == "<dict>"
    assert odd["outputs"] == "<dict>"
    assert odd["error"] is None
