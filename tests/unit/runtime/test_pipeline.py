"""A pipeline compiled into one dspy.Module: predictors named after the steps, data flowing
along the bindings, state saved per predictor and checked on load."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import dspy
import pytest

from dspyops.aggregates.pipeline import Checkers, check_pipeline
from dspyops.events.steps import Step
from dspyops.runtime.modules import StateMismatch, load_state, state_problems
from dspyops.runtime.offline import OfflineLM
from dspyops.runtime.pipeline import Pipeline, StepServices
from dspyops.signatures import compile_signature
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

PROGRAM = compile_signature("question: str -> answer: str, sources: list[str]")
STEPS = [
    {"name": "query", "kind": "Predict", "signature": "question: str -> query: str"},
    {
        "name": "retrieve",
        "kind": "Retrieve",
        "corpus": "docs",
        "k": 2,
        "bindings": {"query": "query.query"},
    },
    {
        "name": "answer",
        "kind": "ChainOfThought",
        "signature": "question: str, context: list[str] -> answer: str, sources: list[str]",
        "bindings": {"context": "retrieve.passages"},
    },
]


@dataclass(frozen=True)
class Hit:
    id: str
    text: str


class Corpus:
    """Stands in for the BM25 index: records the searches it gets."""

    def __init__(self) -> None:
        self.searches: list[tuple[str, str, int]] = []

    def search(self, corpus: str, query: str, k: int) -> list[Hit]:
        self.searches.append((corpus, query, k))
        return [Hit(f"d{i}", f"passage {i} for {query}") for i in range(k)]


def pipeline(corpus: Corpus) -> Pipeline:
    checkers = Checkers(lambda c: True, lambda names: [], lambda name: [])
    steps, outputs = check_pipeline(
        PROGRAM, [Step.model_validate(s) for s in STEPS], None, checkers
    )
    return Pipeline(PROGRAM.text, steps, outputs, StepServices(search=corpus.search))


def test_predictors_are_named_after_the_steps() -> None:
    names = [name for name, _ in pipeline(Corpus()).named_predictors()]
    assert names == ["query", "answer.predict"]


def test_data_flows_along_the_bindings() -> None:
    corpus = Corpus()
    with dspy.context(lm=OfflineLM()):
        result = pipeline(corpus)(question="why?")
    (search,) = corpus.searches
    assert search[0] == "docs"
    assert search[2] == 2
    assert search[1].startswith("[offline]")  # the query step's output was the search text
    assert result.answer.startswith("[offline]")
    assert set(result.keys()) == {"answer", "sources"}


async def test_the_async_path_gives_the_same() -> None:
    corpus = Corpus()
    with dspy.context(lm=OfflineLM()):
        result = await pipeline(corpus).acall(question="why?")
    assert len(corpus.searches) == 1
    assert set(result.keys()) == {"answer", "sources"}


@pytest.mark.parametrize("kind", ["BestOfN", "Refine"])
async def test_steps_without_an_async_path_run_on_the_async_path(kind: str) -> None:
    # DSPy 3.4's BestOfN and Refine define no aforward: acall on them raises.
    program = compile_signature("question: str -> answer: str")
    step = {
        "name": "best",
        "kind": kind,
        "signature": "question: str -> answer: str",
        "reward": "always",
        "attempts": 2,
    }
    checkers = Checkers(lambda c: True, lambda names: [], lambda name: [])
    steps, outputs = check_pipeline(program, [Step.model_validate(step)], None, checkers)
    rewarded: list[str] = []

    def reward(name: str, outputs: list[str]) -> Any:
        def score(inputs: dict[str, Any], prediction: Any) -> float:
            rewarded.append(prediction.answer)
            return 1.0

        return score

    module = Pipeline(program.text, steps, outputs, StepServices(reward=reward))
    with dspy.context(lm=OfflineLM()):
        result = await module.acall(question="why?")

    assert result.answer.startswith("[offline]")
    assert rewarded == [result.answer]


def test_state_is_json_per_predictor_and_checked_on_load() -> None:
    module = pipeline(Corpus())
    module.answer.predict.demos = [
        dspy.Example(question="q", context=["c"], answer="a", sources=[])
    ]
    state = json.loads(json.dumps(module.dump_state(), default=str))
    assert set(state) == {"query", "answer.predict"}
    fresh = pipeline(Corpus())
    load_state(fresh, state)
    assert len(fresh.answer.predict.demos) == 1
    assert state_problems(fresh, {"query": state["query"]}) == [
        "missing state for predictor 'answer.predict'"
    ]
    with pytest.raises(StateMismatch):
        load_state(fresh, {**state, "retrieve": {}})


def test_copies_share_the_search_not_a_copy_of_it() -> None:
    corpus = Corpus()
    copy = pipeline(corpus).deepcopy()
    with dspy.context(lm=OfflineLM()):
        copy(question="q")
    assert len(corpus.searches) == 1


def test_labelled_demos_with_the_programs_fields_load_on_a_step_predictor() -> None:
    # LabeledFewShot gives every predictor the dataset's examples: program fields.
    module = pipeline(Corpus())
    state: dict[str, Any] = json.loads(json.dumps(module.dump_state(), default=str))
    state["query"]["demos"] = [{"question": "q", "answer": "a", "sources": ["s"]}]
    fresh = pipeline(Corpus())
    load_state(fresh, state)
    (demo,) = fresh.query.demos
    assert dict(demo) == {"question": "q", "answer": "a", "sources": ["s"]}
    assert fresh.answer.predict.demos == []


async def test_a_thread_step_stops_calling_the_lm_once_its_execution_is_cancelled() -> None:
    # BestOfN runs in a thread, which a deadline cannot kill: it is told to stop instead.
    program = compile_signature("question: str -> answer: str")
    step = {
        "name": "best",
        "kind": "BestOfN",
        "signature": "question: str -> answer: str",
        "reward": "never",
        "attempts": 6,
        "threshold": 1.0,
    }
    checkers = Checkers(lambda c: True, lambda names: [], lambda name: [])
    steps, outputs = check_pipeline(program, [Step.model_validate(step)], None, checkers)
    module = Pipeline(
        program.text, steps, outputs, StepServices(reward=lambda name, fields: lambda i, p: 0.0)
    )
    lm = ScriptedLM(chat_reply(answer="a"), delay_s=0.15)

    with dspy.context(lm=lm):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await module.acall(question="why?")
        await asyncio.sleep(1.2)  # six attempts would take 0.9 s

    # The call in flight when the deadline passed ends; no attempt starts after it.
    assert 1 <= len(lm.engine_state.requests) <= 2
