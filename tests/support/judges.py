"""A judged program and its judge, each on its own scripted LM profile: `default` answers
"What is n plus 1?" right for n < 2 and "42" otherwise; `judge` (priced) gives 5 when
the answer equals the reference and 1 otherwise, with a rationale."""

from __future__ import annotations

import re

import dspy
from dspy.lm15 import Request

from dspyops.runtime.profiles import LMProfile, ProfileRegistry
from tests.support.openai_server import chat_reply
from tests.support.optimization import prompt_text
from tests.support.scripted_lm import ScriptedLM

QA = "question: str -> answer: str"
GRADER = "question: str, answer: str, reference: str -> score: int[1, 5], rationale: str"
EXAMPLES = [{"question": f"What is {n} plus 1?", "answer": str(n + 1)} for n in range(4)]
_SECTION = re.compile(r"\[\[ ## (answer|reference) ## \]\]\n(.*?)\n")


def _student(request: Request) -> str:
    # Right for "What is 0/1 plus 1?", wrong for the others.
    question = re.findall(r"What is (\d+) plus 1\?", prompt_text(request))[-1]
    return chat_reply(answer=str(int(question) + 1) if int(question) < 2 else "42")


def grade(request: Request) -> str:
    found = dict(_SECTION.findall(prompt_text(request)))
    right = found.get("answer") == found.get("reference")
    return chat_reply(score=5 if right else 1, rationale="matches" if right else "wrong sum")


class TwoProfiles(ProfileRegistry):
    """`default` answers the judged program, `judge` (priced) the judge."""

    def __init__(self) -> None:
        judge = LMProfile.model_validate(
            {
                "name": "judge",
                "model": "scripted/judge",
                "input_cost_per_million": 1.0,
                "output_cost_per_million": 2.0,
            }
        )
        default = LMProfile.model_validate({"name": "default", "model": "scripted/lm"})
        super().__init__({"default": default, "judge": judge})
        self.lms: dict[str, dspy.BaseLM] = {
            "default": ScriptedLM(_student),
            "judge": ScriptedLM(grade, usage=(100, 10)),
        }

    def build_lm(self, name: str) -> dspy.BaseLM:
        self.get(name)
        return self.lms[name]
