"""Run a DSPy module once, asynchronously, and describe what happened.

``execute_program`` never raises for LM or adapter failures: every outcome, good or bad,
is an ``ExecutionOutcome`` a consumer can turn into exactly one result event.
Cancellation (``asyncio.CancelledError``) still propagates, so a worker can shut down.

Error codes (``ExecutionOutcome.error_code``):

===========================  =====================================================
``lm_timeout``               the execution exceeded ``timeout_s``, or the provider
                             request timed out (after DSPy's retries)
``lm_rate_limited``          the provider answered 429 on every attempt
``context_window_exceeded``  the prompt does not fit the model's context window
``lm_error``                 any other LM failure: auth, bad request, server error,
                             transport, misconfiguration
``output_parse_error``       the LM answered, but not in a shape the adapter could
                             parse into the signature's outputs (AdapterParseError)
``internal_error``           anything else; a bug on our side, never the LM's fault
===========================  =====================================================
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import dspy
from dspy import lm15
from dspy.utils.exceptions import (
    AdapterParseError,
    ContextWindowExceededError,
    LMError,
    LMRateLimitError,
    LMTimeoutError,
)
from dspy.utils.usage_tracker import track_usage
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python

logger = logging.getLogger(__name__)

LM_TIMEOUT = "lm_timeout"
LM_RATE_LIMITED = "lm_rate_limited"
LM_ERROR = "lm_error"
CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
OUTPUT_PARSE_ERROR = "output_parse_error"
INTERNAL_ERROR = "internal_error"

_MAX_MESSAGE = 2000

# Exceptions that reach us without DSPy's translation (a legacy LM, or LiteLLM called
# directly) are recognised by class name, so runtime/ needs no LiteLLM import.
_FOREIGN_CODES = {
    "Timeout": LM_TIMEOUT,
    "APITimeoutError": LM_TIMEOUT,
    "RateLimitError": LM_RATE_LIMITED,
    "ContextWindowExceededError": CONTEXT_WINDOW_EXCEEDED,
}
_FOREIGN_MODULES = ("litellm", "openai", "httpx", "httpcore")
# lm15's transport raises these for a client timeout; DSPy wraps them as LMTransportError.
_TIMEOUT_NAMES = frozenset({"ReadTimeout", "ConnectTimeout", "WriteTimeout", "Timeout"})


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ExecutionOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    # The prediction's fields, JSON-able; for ChainOfThought this includes "reasoning".
    outputs: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    latency_ms: float
    # Summed over every model called; counted for failed executions too (billed tokens).
    usage: Usage = Usage()
    model: str
    # LM responses received (retries inside one DSPy call count once).
    lm_calls: int = 0


async def execute_program(
    module: dspy.Module, inputs: dict[str, Any], lm: dspy.BaseLM, *, timeout_s: float
) -> ExecutionOutcome:
    """Call ``module`` with ``inputs`` on ``lm``, within ``timeout_s`` seconds."""
    start = time.monotonic()
    outputs: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    # Our own tracker (not only pred.get_lm_usage()) so a failed execution still
    # reports the tokens it was billed for.
    with dspy.context(lm=lm, track_usage=True), track_usage() as tracker:
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                prediction = await module.acall(**inputs)
            outputs = to_jsonable_python(dict(prediction.items()))
        except Exception as exc:
            if deadline.expired():
                code, message = LM_TIMEOUT, f"execution exceeded its limit of {timeout_s:g} s"
            else:
                code, message = classify(exc), _describe(exc)
            if code == INTERNAL_ERROR:
                logger.exception("execution failed with an unexpected error")
    latency_ms = (time.monotonic() - start) * 1000
    usage, lm_calls = _usage(tracker.get_total_tokens(), tracker.usage_data)
    return ExecutionOutcome(
        ok=code is None,
        outputs=outputs,
        error_code=code,
        error_message=message,
        latency_ms=latency_ms,
        usage=usage,
        model=str(getattr(lm, "model", type(lm).__name__)),
        lm_calls=lm_calls,
    )


def classify(exc: BaseException) -> str:
    """The error code for an exception raised while running a module."""
    if isinstance(exc, AdapterParseError):
        return OUTPUT_PARSE_ERROR
    if isinstance(exc, ContextWindowExceededError | lm15.ContextLengthError):
        return CONTEXT_WINDOW_EXCEEDED
    if isinstance(exc, LMTimeoutError | lm15.TimeoutError | TimeoutError):
        return LM_TIMEOUT
    if isinstance(exc, LMRateLimitError | lm15.RateLimitError):
        return LM_RATE_LIMITED
    if isinstance(exc, LMError | lm15.LM15Error):
        return LM_TIMEOUT if _timed_out(exc) else LM_ERROR
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in _FOREIGN_MODULES:
            return _FOREIGN_CODES.get(cls.__name__, LM_ERROR)
    return INTERNAL_ERROR


def _timed_out(exc: BaseException) -> bool:
    """A client-side read/connect timeout, which DSPy reports as a transport error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or type(current).__name__ in _TIMEOUT_NAMES:
            return True
        current = current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _usage(totals: dict[str, dict[str, Any]], entries: dict[str, list[Any]]) -> tuple[Usage, int]:
    prompt = completion = total = 0
    for per_model in totals.values():
        p = _count(per_model.get("prompt_tokens"))
        c = _count(per_model.get("completion_tokens"))
        t = per_model.get("total_tokens")
        prompt, completion = prompt + p, completion + c
        total += _count(t) if t is not None else p + c
    calls = sum(len(e) for e in entries.values())
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total), calls


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


_configured = False
_configure_lock = threading.Lock()


def configure_dspy_for_workers(*, keep_history: bool = False) -> None:
    """Set the process-wide DSPy policy for workers; call once at startup.

    Cache: disk and memory caches off. An execution asks for a fresh answer: a cached
    reply would carry no usage and a misleading latency, replay a stale answer after a
    profile changes, and the disk cache is shared mutable state across workers that
    unpickles what it reads. The memory cache is unbounded in some versions (dspy
    issue 8091). LMs built from profiles also pass ``cache=False``; this makes the
    policy hold for any LM. Optimizations that want caching should opt in explicitly.

    Pricing metadata: the bundled snapshot only (``LITELLM_LOCAL_MODEL_COST_MAP``).

    History: off unless ``keep_history``. Each LM and module keeps up to 10,000
    entries holding full prompts and responses, which a long-running worker does
    not need (it records its own latency and usage per execution).

    DSPy allows ``dspy.configure`` only from the thread that first called it, so this
    must run in the worker's main thread before any execution.
    """
    global _configured
    with _configure_lock:
        if _configured:
            return
        # DSPy fetches LiteLLM's model price map from GitHub on first use (5 s timeout);
        # a worker uses the bundled snapshot instead: no surprise egress, no stall.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        if not keep_history:
            dspy.configure(disable_history=True)
        _configured = True
