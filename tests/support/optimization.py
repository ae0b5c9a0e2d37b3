"""A few-shot-sensitive scripted LM and a small arithmetic dataset for optimization tests.

The LM answers a question correctly only when its prompt shows at least one worked
example (a demo), and "I do not know" otherwise: an unoptimized program scores 0 and
one with demos scores 1, so a test sees the optimizer's effect and can find the demos
in the prompt the LM received.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dspy
import faust
import pytest
from dspy.lm15 import Request

from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from dspyops.runtime.profiles import LMProfile, ProfileRegistry
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM
from tests.support.worker_stack import drop_schema, settings_for, stack_env

Stack = tuple[Settings, Topics, ScriptedLM, faust.App]

SIGNATURE = "question: str -> answer: str"
ANSWERS = {f"What is {a} plus {b}?": str(a + b) for a in range(1, 7) for b in range(1, 4)}
EXAMPLES = [{"question": q, "answer": a} for q, a in ANSWERS.items()]
_QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(.*?)\n")


def prompt_text(request: Request) -> str:
    return "\n".join(
        getattr(part, "text", "") for message in request.messages for part in message.parts
    )


def few_shot_reply(request: Request) -> str:
    text = prompt_text(request)
    questions = _QUESTION.findall(text)
    if not questions:
        return chat_reply(answer="I do not know")
    question = questions[-1]
    if len(questions) > 1 and question in ANSWERS:
        return chat_reply(answer=ANSWERS[question])
    return chat_reply(answer="I do not know")


def _first_operand(question: str) -> str:
    return question.split(" plus ")[0]


def same_operand_text(text: str) -> str:
    """Right only when a demo shown asks about the same first number: candidates with
    different demos score differently, so a search has a best to find (and ties)."""
    questions = _QUESTION.findall(text)
    if questions and questions[-1] in ANSWERS:
        question = questions[-1]
        if any(_first_operand(q) == _first_operand(question) for q in questions[:-1]):
            return chat_reply(answer=ANSWERS[question])
    return chat_reply(answer="I do not know")


def same_operand_reply(request: Request) -> str:
    return same_operand_text(prompt_text(request))


def few_shot_lm(delay_s: float = 0.0, usage: tuple[int, int] = (0, 0)) -> ScriptedLM:
    return ScriptedLM(few_shot_reply, delay_s=delay_s, usage=usage)


class ScriptedProfiles(ProfileRegistry):
    """The ``default`` profile, answered by one in-process LM."""

    def __init__(self, lm: dspy.BaseLM, **prices: float) -> None:
        """``prices``: input_cost_per_million and output_cost_per_million, if priced."""
        profile = LMProfile.model_validate({"name": "default", "model": "scripted/lm", **prices})
        super().__init__({"default": profile})
        self._lm = lm

    def build_lm(self, name: str) -> dspy.BaseLM:
        self.get(name)
        return self._lm


def of_type(messages: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == f"dspyops.result.{name}"]


def register_commands(unique: str, examples: list[dict[str, Any]] | None = None) -> list[Envelope]:
    """RegisterProgram add-<unique> and RegisterDataset sums-<unique>."""
    register = command(
        "RegisterProgram", {"program_id": f"add-{unique}", "name": "add", "signature": SIGNATURE}
    )
    dataset = command(
        "RegisterDataset",
        {
            "dataset_id": f"sums-{unique}",
            "name": "sums",
            "examples": EXAMPLES if examples is None else examples,
            "dev_fraction": 0.3,
        },
    )
    return [register, dataset]


@pytest.fixture
def settings_for_test(bootstrap_servers: str, database_url: str, unique: str) -> Iterator[Settings]:
    env = stack_env(bootstrap_servers, database_url, unique)
    # settings_for, not Settings.model_validate(env): validation reads field names, so the
    # DSPYOPS_* keys were ignored and the worker ran on the shared default topics and
    # event store (`dspyops.`, schema `dspyops`), beside every other engineer's stack.
    settings = settings_for(env)
    assert settings.topic_prefix == f"t{unique}."  # never the shared default topics
    assert settings.event_store_schema == env["DSPYOPS_EVENT_STORE_SCHEMA"]
    yield settings
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


@pytest.fixture
async def stack(settings_for_test: Settings) -> AsyncIterator[Stack]:
    """The worker's faust app in this process, its one LM a few-shot-sensitive script."""
    settings = settings_for_test
    lm = few_shot_lm()
    await prepare_topics(settings)
    app = build_worker_app(settings, profiles=ScriptedProfiles(lm), relay=False)
    await app.start()
    try:
        yield settings, Topics(settings.topic_prefix), lm, app
    finally:
        await app.stop()


async def send_and_wait(
    settings: Settings, topics: Topics, results: TopicReader, *envelopes: Envelope
) -> dict[str, dict[str, Any]]:
    await send_commands(settings.bootstrap_servers, topics, list(envelopes))
    found = await results.results_for([e.id for e in envelopes], timeout_s=90)
    return {cid: replies[0] for cid, replies in found.items()}
