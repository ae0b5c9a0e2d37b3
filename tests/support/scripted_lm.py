"""A scripted, truly asynchronous test LM: fixed replies, optional latency, fake usage.

Unlike ``dspy.utils.DummyLM`` it can wait (``asyncio.sleep`` on the event loop, no
thread), fail with a chosen error, and report token usage, so tests and benchmarks
can measure concurrency and usage accounting without a network::

    lm = ScriptedLM(chat_reply(answer="Paris", confidence=0.9), delay_s=0.2)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import dspy
from dspy.lm15 import Message, Request, Response, TextPart, Usage

Reply = str | Callable[[Request], str]


class ScriptedEngine:
    def __init__(
        self,
        reply: Reply,
        *,
        delay_s: float = 0.0,
        usage: tuple[int, int] = (0, 0),
        error: BaseException | None = None,
        keep_requests: bool = True,
    ) -> None:
        self.reply = reply
        # Tests read what the LM was asked; a long benchmark must not keep every prompt.
        self.keep_requests = keep_requests
        self.delay_s = delay_s
        self.usage = usage
        self.error = error
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak_in_flight = 0

    def respond(self, request: Request) -> Response:
        if self.keep_requests:
            self.requests.append(request)
        if self.error is not None:
            raise self.error
        text = self.reply(request) if callable(self.reply) else self.reply
        prompt, completion = self.usage
        return Response(
            id=None,
            model="scripted",
            message=Message.assistant((TextPart(text),)),
            finish_reason="stop",
            usage=Usage(input_tokens=prompt, output_tokens=completion),
        )

    def complete(self, request: Request) -> Response:
        time.sleep(self.delay_s)
        return self.respond(request)

    def close(self) -> None:
        pass


class AsyncScriptedEngine:
    def __init__(self, sync: ScriptedEngine) -> None:
        self.sync = sync

    async def complete(self, request: Request) -> Response:
        engine = self.sync
        engine.in_flight += 1
        engine.peak_in_flight = max(engine.peak_in_flight, engine.in_flight)
        try:
            await asyncio.sleep(engine.delay_s)
            return engine.respond(request)
        finally:
            engine.in_flight -= 1

    async def aclose(self) -> None:
        pass


class ScriptedLM(dspy.LM):
    def __init__(self, reply: Reply, **options: Any) -> None:
        self.engine_state = ScriptedEngine(reply, **options)
        super().__init__(
            "scripted",
            engine=self.engine_state,
            async_engine=AsyncScriptedEngine(self.engine_state),
            cache=False,
            num_retries=0,
        )
