"""Tools inside dspy.ReAct: a failing tool is an observation, every call reaches callbacks.

ReAct (dspy 3.4.1, ``predict/react.py``) catches any ``Exception`` a tool raises and
stores ``"Execution error in <tool>: <traceback, 5 frames>"`` as that step's
observation, then asks the LM for the next step: the program still returns outputs.
``dspy.Tool.__call__``/``acall`` are wrapped by ``with_callbacks``, so a ``BaseCallback``
gets ``on_tool_start(call_id, instance, inputs)`` and ``on_tool_end(call_id, outputs,
exception)`` for every call, ReAct's own ``finish`` included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dspy
import dspy.utils.callback_context as callback_context
import pytest
from dspy.utils import DummyLM
from dspy.utils.callback import BaseCallback

from dspyops.runtime.tools import build_tools


def step(tool: str, args: dict[str, Any], thought: str = "next") -> dict[str, Any]:
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args}


def scripted(*tool_steps: dict[str, Any], answer: str) -> DummyLM:
    # ReAct's own predictor answers each step; its ChainOfThought extract answers last.
    return DummyLM([*tool_steps, {"reasoning": "from the trajectory", "answer": answer}])


@dataclass
class ToolCall:
    name: str
    inputs: dict[str, Any]
    parent_call_id: str | None
    outputs: Any = None
    exception: BaseException | None = None


@dataclass
class RecordToolCalls(BaseCallback):
    calls: dict[str, ToolCall] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.modules[call_id] = type(instance).__name__

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        parent = callback_context.ACTIVE_CALL_ID.get()
        self.calls[call_id] = ToolCall(instance.name, inputs, parent)

    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.calls[call_id].outputs = outputs
        self.calls[call_id].exception = exception


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_a_tool_error_is_an_observation_and_the_program_still_answers(path: str) -> None:
    react = dspy.ReAct("question -> answer", tools=build_tools(["arithmetic"]), max_iters=3)
    lm = scripted(
        step("arithmetic", {"expression": "1/0"}, "divide"),
        step("finish", {}),
        answer="undefined",
    )
    with dspy.context(lm=lm):
        if path == "async":
            prediction = await react.acall(question="What is 1/0?")
        else:
            prediction = react(question="What is 1/0?")
    assert prediction.answer == "undefined"
    trajectory = prediction.trajectory
    assert trajectory["tool_name_0"] == "arithmetic"
    assert trajectory["tool_args_0"] == {"expression": "1/0"}
    observation = trajectory["observation_0"]
    assert observation.startswith("Execution error in arithmetic:")
    assert observation.endswith("ExpressionError: division by zero")
    assert trajectory["observation_1"] == "Completed."


async def test_a_callback_sees_every_tool_call_with_name_arguments_and_result_or_error() -> None:
    react = dspy.ReAct("question -> answer", tools=build_tools(["arithmetic"]), max_iters=4)
    lm = scripted(
        step("arithmetic", {"expression": "6 * 7"}),
        step("arithmetic", {"expression": "1/0"}),
        step("finish", {}),
        answer="42",
    )
    recorder = RecordToolCalls()
    with dspy.context(lm=lm, callbacks=[recorder]):
        prediction = await react.acall(question="What is 6 * 7?")
    assert prediction.answer == "42"
    calls = list(recorder.calls.values())
    assert [(c.name, c.inputs) for c in calls] == [
        ("arithmetic", {"kwargs": {"expression": "6 * 7"}}),
        ("arithmetic", {"kwargs": {"expression": "1/0"}}),
        ("finish", {"kwargs": {}}),
    ]
    assert (calls[0].outputs, calls[0].exception) == ("42", None)
    assert calls[1].outputs is None
    assert isinstance(calls[1].exception, ValueError)
    assert str(calls[1].exception) == "division by zero"
    assert (calls[2].outputs, calls[2].exception) == ("Completed.", None)
    # Every tool call runs inside the ReAct module's call: its call id is the parent.
    assert {recorder.modules[str(c.parent_call_id)] for c in calls} == {"ReAct"}
    assert len({c.parent_call_id for c in calls}) == 1
