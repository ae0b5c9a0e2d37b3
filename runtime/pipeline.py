"""A pipeline's steps compiled into one `dspy.Module` whose sub-modules are named after them.

Each step is an attribute of the `Pipeline` module named after the step, so DSPy's
`named_predictors()` names the predictors after the steps (`query`, `answer.predict`,
`agent.react`, ...), every optimizer tunes all of them, and a version's saved state is
`dump_state()`: JSON per predictor, checked on load by `runtime.modules.load_state`.

Steps run in order; each step's inputs are read from the program's inputs or an
earlier step's outputs as its bindings say, and the program's outputs from the output
bindings. What dspyops lends the steps (corpus search, tools, reward metrics) comes in
`StepServices`, so this module knows nothing of the event store or of entry points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspyops.runtime.modules import MODULE_KINDS
from dspyops.runtime.run_state import CANCELLED, GuardedAdapter, RunState
from dspyops.runtime.tools_builtin import Passage
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature

Step = dict[str, Any]
Reward = Callable[[dict[str, Any], Any], float]


# (corpus id, query, k) -> passages of the corpus version the execution was planned with.
Search = Callable[[str, str, int], Sequence[Passage]]


@dataclass(frozen=True)
class StepServices:
    search: Search | None = None
    # (tool names, the step's corpus) -> the dspy.Tool objects of a ReAct step.
    tools: Callable[[list[str], str | None], list[dspy.Tool]] | None = None
    # (a registered metric's name, the step's outputs) -> reward_fn(inputs, prediction)
    # for BestOfN / Refine.
    reward: Callable[[str, list[str]], Reward] | None = None
    # The corpus versions searched (a plan's), for the trace to record.
    versions: dict[str, int] = field(default_factory=dict)


class Shared:
    """A service held by a module, shared by its copies: optimizers deep-copy modules, and a
    copy must search the same index, not a copy of the store behind it."""

    def __init__(self, call: Search) -> None:
        self.call = call

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
        return self


class Retrieve(dspy.Module):
    """query -> passages, document_ids: the top `k` documents of a corpus (no predictor)."""

    def __init__(self, corpus: str, k: int, search: Search, version: int | None = None) -> None:
        super().__init__()
        self.corpus = corpus
        self.k = k
        # The corpus version searched (None: its latest when searched), for the trace.
        self.version = version
        self._search = Shared(search)

    def forward(self, query: str) -> dspy.Prediction:
        return self._prediction(self._search.call(self.corpus, query, self.k))

    async def aforward(self, query: str) -> dspy.Prediction:
        # Search (and building the index the first time) is CPU work: off the event loop.
        hits = await asyncio.to_thread(self._search.call, self.corpus, query, self.k)
        return self._prediction(hits)

    @staticmethod
    def _prediction(hits: Sequence[Passage]) -> dspy.Prediction:
        return dspy.Prediction(
            passages=[hit.text for hit in hits], document_ids=[hit.id for hit in hits]
        )


class Pipeline(dspy.Module):
    def __init__(
        self,
        signature: str,
        steps: list[Step],
        outputs: dict[str, str],
        services: StepServices,
    ) -> None:
        super().__init__()
        # The program's signature: labelled demos (the dataset's examples) carry its
        # fields, and a saved state's check allows them (runtime.modules).
        self.dspyops_signature = signature
        self._order = [step["name"] for step in steps]
        self._bindings = {step["name"]: dict(step["bindings"]) for step in steps}
        self._outputs = dict(outputs)
        for step in steps:
            setattr(self, step["name"], build_step(step, services))

    def forward(self, **inputs: Any) -> dspy.Prediction:
        values: dict[str, Any] = {}
        for name in self._order:
            values[name] = getattr(self, name)(**self._arguments(name, inputs, values))
        return self._result(inputs, values)

    async def aforward(self, **inputs: Any) -> dspy.Prediction:
        values: dict[str, Any] = {}
        for name in self._order:
            step = getattr(self, name)
            arguments = self._arguments(name, inputs, values)
            if hasattr(step, "aforward"):
                values[name] = await step.acall(**arguments)
            else:
                values[name] = await _in_thread(step, arguments)
        return self._result(inputs, values)

    def _arguments(
        self, name: str, inputs: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            field: _read(reference, inputs, values)
            for field, reference in self._bindings[name].items()
        }

    def _result(self, inputs: dict[str, Any], values: dict[str, Any]) -> dspy.Prediction:
        return dspy.Prediction(
            **{name: _read(reference, inputs, values) for name, reference in self._outputs.items()}
        )


async def _in_thread(step: dspy.Module, arguments: dict[str, Any]) -> Any:
    """A step without an async path (DSPy's BestOfN and Refine: Module.acall would fail),
    run sync in a thread with this execution's context. A thread cannot be killed: when
    the execution is cancelled (its deadline, a stopping worker) the step is told to stop,
    and its next LM call raises instead of going out (the call in flight, if any, ends)."""
    stop = RunState(float("inf"))

    def run() -> Any:
        with dspy.context(adapter=GuardedAdapter(stop)):
            return step(**arguments)

    try:
        return await asyncio.to_thread(run)
    except asyncio.CancelledError:
        stop.stop(CANCELLED)
        raise


def _read(reference: str, inputs: dict[str, Any], values: dict[str, Any]) -> Any:
    step, dot, field = reference.partition(".")
    if not dot:
        return inputs[reference]
    return getattr(values[step], field)


def build_step(step: Step, services: StepServices) -> dspy.Module:
    kind = step["kind"]
    if kind == "Retrieve":
        if services.search is None:
            raise RuntimeError("a Retrieve step needs corpus search, which was not given")
        corpus = step["corpus"]
        return Retrieve(corpus, step["k"], services.search, services.versions.get(corpus))
    compiled = compile_signature(step["signature"], instructions=step.get("instructions"))
    signature = dspy_signature(compiled)
    if kind in MODULE_KINDS:  # Predict, ChainOfThought: as for a one-signature program
        return MODULE_KINDS[kind](signature)
    if kind == "ReAct":
        if services.tools is None:
            raise RuntimeError("a ReAct step needs tools, which were not given")
        tools = services.tools(list(step["tools"]), step.get("corpus"))
        return dspy.ReAct(signature, tools=tools, max_iters=step["max_iters"])
    if kind in {"BestOfN", "Refine"}:
        if services.reward is None:
            raise RuntimeError(f"a {kind} step needs reward metrics, which were not given")
        make = dspy.BestOfN if kind == "BestOfN" else dspy.Refine
        return make(
            module=dspy.Predict(signature),
            N=step["attempts"],
            reward_fn=services.reward(step["reward"], list(compiled.output_names)),
            threshold=step["threshold"],
        )
    raise ValueError(f"unknown step kind {kind!r}")
