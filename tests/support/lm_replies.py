"""Replies for the loopback OpenAI-compatible server that fit whichever predictor asks.

A pipeline's predictors ask for different outputs; `by_fields` reads the output fields
the prompt lists (DSPy's ChatAdapter writes "Your output fields are: 1. `name` ...") and
answers each from a table of values (a value may be a function of the messages), so one
server answers every step of a program.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.support.openai_server import Messages, Responder, chat_reply

_LISTED_FIELD = re.compile(r"^\d+\. `(\w+)`", re.MULTILINE)
Value = Any | Callable[[Messages], Any]


def output_fields(messages: Messages) -> list[str]:
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    text = system if isinstance(system, str) else str(system)
    listed = text.partition("Your output fields are:")[2].partition("All interactions will")[0]
    return _LISTED_FIELD.findall(listed)


def last_user_text(messages: Messages) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", "")
            return content if isinstance(content, str) else str(content)
    return ""


def by_fields(values: dict[str, Value], default: Any = "x") -> Responder:
    def respond(messages: Messages) -> str:
        answer = {}
        for name in output_fields(messages):
            value = values.get(name, default)
            answer[name] = value(messages) if callable(value) else value
        return chat_reply(**answer)

    return respond
