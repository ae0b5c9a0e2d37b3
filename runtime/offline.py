"""The offline LM: deterministic, network-free, and labelled as such.

It exists so the demo, the tests and a fresh install run end to end without a key.
Its answers are canned: the model name is ``offline`` and every string it produces
starts with ``[offline]``, so nobody mistakes one for a model's answer.

It is a ``dspy.LM`` with a custom engine (DSPy 3.4's supported extension point:
``complete(Request) -> Response``; the ``forward()`` subclass interface is deprecated
for 3.5). The engine sees only the rendered prompt, so it learns which outputs to
produce from the running ``Predict`` (DSPy keeps the module call stack in
``settings.caller_modules``) and falls back to the field headers in the prompt.
Its reply is in the format the prompt asks for: ChatAdapter's ``[[ ## field ## ]]``
sections, or a JSON object for JSONAdapter.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from typing import Any

import dspy
import pydantic
from dspy.adapters.chat_adapter import ChatAdapter, FieldInfoWithName
from dspy.lm15 import Message, Request, Response, TextPart, Usage

OFFLINE_MODEL = "offline"
OFFLINE_LABEL = "[offline]"

_LISTED_FIELD = re.compile(r"^\d+\. `(\w+)`", re.MULTILINE)
_CHAT_DONE = "[[ ## completed ## ]]"
_MAX_DEPTH = 4


def placeholder(annotation: Any, field: str, depth: int = 0) -> Any:
    """A deterministic value of ``annotation``; strings carry the offline label."""
    if depth > _MAX_DEPTH:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is str or annotation is Any or annotation is None:
        return f"{OFFLINE_LABEL} {field}"
    if annotation is bool:
        return False
    if annotation is int:
        return 0
    if annotation is float:
        return 0.0
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        # Optional[X] gets an X: a present value shows the label better than None.
        concrete = [a for a in args if a is not type(None)]
        return placeholder(concrete[0], field, depth + 1) if concrete else None
    if origin is typing.Annotated:
        return placeholder(args[0], field, depth + 1)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation)).value
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return {
            name: placeholder(info.annotation, name, depth + 1)
            for name, info in annotation.model_fields.items()
        }
    if annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset):
        return [placeholder(args[0] if args else str, field, depth + 1)]
    if annotation is dict or origin is dict:
        value_type = args[1] if len(args) == 2 else str
        return {"key": placeholder(value_type, field, depth + 1)}
    return f"{OFFLINE_LABEL} {field}"


def output_fields(request: Request) -> dict[str, Any]:
    """Output field name -> annotation, from the running Predict or the prompt."""
    for module in reversed(dspy.settings.caller_modules or []):
        signature = getattr(module, "signature", None)
        if isinstance(signature, type) and issubclass(signature, dspy.Signature):
            outputs: dict[str, Any] = signature.output_fields  # type: ignore[attr-defined]
            return {name: f.annotation for name, f in outputs.items()}
    # Both adapters list the outputs as "1. `name` (type): ..." under this heading.
    described = _system_text(request).partition("Your output fields are:")[2]
    described = described.partition("All interactions will be structured")[0]
    return dict.fromkeys(_LISTED_FIELD.findall(described), str)


def _system_text(request: Request) -> str:
    if request.system is None:
        return ""
    if isinstance(request.system, str):
        return request.system
    return "".join(getattr(part, "text", "") or "" for part in request.system)


def _prompt_text(request: Request) -> str:
    return _system_text(request) + "".join(m.text or "" for m in request.messages)


def render_reply(request: Request) -> str:
    values = {name: placeholder(ann, name) for name, ann in output_fields(request).items()}
    if _CHAT_DONE not in _prompt_text(request):
        return json.dumps(values)
    fields = {
        FieldInfoWithName(name=name, info=dspy.OutputField()): value
        for name, value in values.items()
    }
    return ChatAdapter().format_field_with_value(fields) + f"\n\n{_CHAT_DONE}"


def _response(request: Request) -> Response:
    return Response(
        id=None,
        model=OFFLINE_MODEL,
        message=Message.assistant((TextPart(render_reply(request)),)),
        finish_reason="stop",
        usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
    )


class OfflineEngine:
    def complete(self, request: Request) -> Response:
        return _response(request)

    def close(self) -> None:
        pass


class AsyncOfflineEngine:
    """Answers on the event loop: no thread, no I/O."""

    async def complete(self, request: Request) -> Response:
        return _response(request)

    async def aclose(self) -> None:
        pass


class OfflineLM(dspy.LM):
    """No cache (nothing worth saving) and no retries (nothing can fail transiently)."""

    def __init__(self) -> None:
        super().__init__(
            OFFLINE_MODEL,
            engine=OfflineEngine(),
            async_engine=AsyncOfflineEngine(),
            cache=False,
            num_retries=0,
        )
