"""The example plugin (MultiHopQA) runs with a scripted LM and a fake search, and its
state goes out and comes back as JSON only: a state that does not fit, or is not plain
JSON, is refused and nothing is loaded."""

from __future__ import annotations

import copy
import json
from typing import Any

import dspy
import pytest
from dspy.lm15 import Request
from dspy.utils import DummyLM

from dspyops.runtime.modules import StateMismatch, load_state, state_problems
from dspyops.runtime.plugin_context import Passage
from dspyops.runtime.plugins import build_plugin
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

OPTIONS = {"corpus_id": "wiki", "hops": 2, "passages_per_hop": 2}
PREDICTORS = ["generate_query.predict", "answer.predict"]


class FakeSearch:
    """Two passages per query, named after it; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, corpus_id: str, query: str, k: int) -> list[Passage]:
        self.calls.append((corpus_id, query, k))
        return [Passage(f"{query}-{i}", f"{query} passage {i}", 1.0 / (i + 1)) for i in range(k)]


def multihop(search: Any = None) -> dspy.Module:
    return build_plugin("multihop", OPTIONS, search or FakeSearch())


def as_json(state: Any) -> Any:
    return json.loads(json.dumps(state))


def tuned_state() -> dict[str, Any]:
    """What an optimizer leaves: new instructions and a demo on every predictor."""
    module = multihop()
    for name, predictor in module.named_predictors():
        fields: dict[str, Any] = {f: f"{f} of {name}" for f in predictor.signature.fields}
        fields["context"] = ["a passage"]
        predictor.demos = [dspy.Example(**fields, augmented=True)]
        predictor.signature = predictor.signature.with_instructions(f"Tuned {name}.")
    return as_json(module.dump_state())


def test_it_searches_each_hop_and_answers_from_what_it_found() -> None:
    search = FakeSearch()
    module = multihop(search)
    lm = DummyLM(
        [
            {"reasoning": "Start wide.", "query": "capital France"},
            {"reasoning": "Narrow down.", "query": "Paris"},
            {"reasoning": "The passages say so.", "answer": "Paris"},
        ]
    )
    with dspy.context(lm=lm):
        prediction = module(question="What is the capital of France?")

    assert prediction.answer == "Paris"
    assert search.calls == [("wiki", "capital France", 2), ("wiki", "Paris", 2)]
    last_prompt = lm.history[-1]["messages"][-1]["content"]
    for passage in ["capital France passage 0", "Paris passage 1"]:
        assert passage in last_prompt


async def test_aforward_runs_the_same_hops_on_an_async_lm() -> None:
    replies = iter(
        [
            chat_reply(reasoning="r", query="q1"),
            chat_reply(reasoning="r", query="q2"),
            chat_reply(reasoning="r", answer="Paris"),
        ]
    )

    def reply(request: Request) -> str:
        return next(replies)

    search = FakeSearch()
    lm = ScriptedLM(reply)
    with dspy.context(lm=lm):
        prediction = await multihop(search).acall(question="Capital of France?")

    assert prediction.answer == "Paris"
    assert [query for _, query, _ in search.calls] == ["q1", "q2"]
    assert len(lm.engine_state.requests) == 3


def test_state_is_kept_per_predictor() -> None:
    module = multihop()
    assert [name for name, _ in module.named_predictors()] == PREDICTORS
    assert list(module.dump_state()) == PREDICTORS


def test_state_round_trips_as_json_into_a_fresh_build() -> None:
    state = tuned_state()
    fresh = multihop()
    assert state_problems(fresh, state) == []

    load_state(fresh, state)

    assert as_json(fresh.dump_state()) == state
    assert fresh.answer.predict.signature.instructions == "Tuned answer.predict."
    assert fresh.generate_query.predict.demos[0]["query"] == "query of generate_query.predict"


def test_labelled_demos_an_optimizer_puts_in_every_predictor_load() -> None:
    # LabeledFewShot gives each predictor the program's examples, fields and all.
    trainset = [dspy.Example(question="Capital of Peru?", answer="Lima").with_inputs("question")]
    tuned = dspy.LabeledFewShot(k=1).compile(multihop(), trainset=trainset)
    state = as_json(tuned.dump_state())

    fresh = multihop()
    load_state(fresh, state)
    assert fresh.generate_query.predict.demos[0]["answer"] == "Lima"


def test_optimizer_copies_share_the_context() -> None:
    module = multihop()
    assert dspy.LabeledFewShot(k=1).compile(module, trainset=[]).context is module.context


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda s: s.update({"extra.predict": copy.deepcopy(s["answer.predict"])}), "unknown"),
        (lambda s: s.pop("answer.predict"), "missing state for predictor 'answer.predict'"),
        (lambda s: s["answer.predict"]["demos"].append({"colour": "red"}), "colour"),
        (lambda s: s["answer.predict"].update(lm={"model": "gpt-4o"}), "lm must be null"),
    ],
)
def test_a_state_that_does_not_fit_is_refused_and_nothing_loads(change: Any, says: str) -> None:
    state = tuned_state()
    change(state)
    module = multihop()
    before = as_json(module.dump_state())

    with pytest.raises(StateMismatch, match=says):
        load_state(module, state)

    assert as_json(module.dump_state()) == before


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (dspy.Example(question="q"), "demos[0].question is not a JSON value (type Example)"),
        (("a", "tuple"), "(type tuple)"),
        (b"bytes", "(type bytes)"),
        (float("nan"), "is nan, which JSON cannot hold"),
        ({1: "int key"}, "has a key that is not a string: 1"),
    ],
)
def test_a_state_that_is_not_plain_json_is_refused(value: Any, says: str) -> None:
    state = tuned_state()
    state["answer.predict"]["demos"][0]["question"] = value
    module = multihop()

    problems = state_problems(module, state)

    assert any(says in problem for problem in problems), problems
    with pytest.raises(StateMismatch):
        load_state(module, state)


def test_a_circular_state_is_refused_without_looping() -> None:
    state = tuned_state()
    state["answer.predict"]["train"].append(state)
    (problem,) = state_problems(multihop(), state)
    assert "met before" in problem
