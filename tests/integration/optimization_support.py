"""A few-shot-sensitive scripted LM and a small arithmetic dataset for optimization tests.

The LM answers a question correctly only when its prompt shows at least one worked
example (a demo), and "I do not know" otherwise: an unoptimized program scores 0 and
one with demos scores 1, so a test sees the optimizer's effect and can find the demos
in the prompt the LM received.
"""

from __future__ import annotations

import re
from typing import Any

import dspy
from dspy.lm15 import Request

from runtime.profiles import LMProfile, ProfileRegistry
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

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


def few_shot_lm(delay_s: float = 0.0) -> ScriptedLM:
    return ScriptedLM(few_shot_reply, delay_s=delay_s)


class ScriptedProfiles(ProfileRegistry):
    """The ``default`` profile, answered by one in-process LM."""

    def __init__(self, lm: dspy.BaseLM) -> None:
        super().__init__({"default": LMProfile(name="default", model="scripted/lm")})
        self._lm = lm

    def build_lm(self, name: str) -> dspy.BaseLM:
        self.get(name)
        return self._lm


def of_type(messages: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == f"dspyops.result.{name}"]
