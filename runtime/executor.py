"""Run a DSPy module once, asynchronously, and describe what happened.

``execute_program`` never raises for LM or adapter failures: every outcome, good or bad,
is an ``ExecutionOutcome`` a consumer can turn into exactly one result event.
Cancellation (``asyncio.CancelledError``) still propagates, so a worker can shut down.

A failure's code and message come from ``runtime.lm_errors`` (the codes are listed
there): never an exception's own text, which may echo the API key or an internal URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import dspy
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python

from dspyops.runtime.lm_errors import INTERNAL_ERROR, LMErrors
from dspyops.runtime.trace import TraceRecorder, UsageTo
from dspyops.runtime.traced import instrument, instrument_lm

logger = logging.getLogger(__name__)


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
    # False when LM responses came without token counts (some providers, DummyLM): the
    # zeros in `usage` are then unknown, not free.
    usage_reported: bool = True
    # The execution's trace (runtime.trace), its per-step summary, and for a failure the
    # step that raised.
    trace: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    failed_step: str | None = None
    # Wall-clock time (ns since the epoch) of the trace's start_ms 0: spans made from the
    # trace afterwards (consumers.telemetry) get their real times.
    trace_started_ns: int = 0


async def execute_program(
    module: dspy.Module,
    inputs: dict[str, Any],
    lm: dspy.BaseLM,
    *,
    timeout_s: float,
    errors: LMErrors,
    steps: list[str] | None = None,
) -> ExecutionOutcome:
    """Call ``module`` with ``inputs`` on ``lm``, within ``timeout_s`` seconds.

    ``errors`` (the profile of ``lm`` and the worker's redactor) tells any failure;
    ``steps`` names a pipeline's steps, so its trace shows them as steps.
    """
    start = time.monotonic()
    outputs: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    # Idempotent: the worker's cached programs and LMs are made traced on first use. A
    # class that cannot be subclassed runs untraced rather than not at all.
    try:
        instrument(module, steps=steps or ())
        instrument_lm(lm)
    except Exception:
        logger.warning("could not trace %s; it runs untraced", type(module).__name__, exc_info=True)
    recorder = TraceRecorder(redact=errors.redactor.redact)
    # Our own tracker (not only pred.get_lm_usage()) so a failed execution still
    # reports the tokens it was billed for; it also gives each LM call's usage to its span.
    tracker = UsageTo(recorder.add_usage)
    with (
        # trace=[]: DSPy's trace of this execution's predictions, its own. The process-wide
        # list would keep the last 10,000 predictions of every execution with their
        # inputs (DSPy's max_trace_size), and modules that read it (BestOfN, Refine)
        # would see the predictions of the other executions in flight.
        dspy.context(lm=lm, track_usage=True, usage_tracker=tracker, trace=[]),
        recorder.recording(),
    ):
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                prediction = await module.acall(**inputs)
            outputs = to_jsonable_python(dict(prediction.items()))
        except Exception as exc:
            if deadline.expired():
                code, message = errors.deadline_exceeded(timeout_s)
            else:
                code, message = errors.describe(exc)
            if code == INTERNAL_ERROR:
                logger.exception("execution failed with an unexpected error")
    latency_ms = (time.monotonic() - start) * 1000
    totals, entries_by_lm = tracker.totals()
    usage, lm_calls = _usage(totals, entries_by_lm)
    reported = all(
        any(key in entry for key in ("prompt_tokens", "completion_tokens", "total_tokens"))
        for entries in entries_by_lm.values()
        for entry in entries
    )
    return ExecutionOutcome(
        ok=code is None,
        outputs=outputs,
        error_code=code,
        error_message=message,
        latency_ms=latency_ms,
        usage=usage,
        model=str(getattr(lm, "model", type(lm).__name__)),
        lm_calls=lm_calls,
        usage_reported=reported,
        trace=recorder.tree(),
        steps=recorder.summary(),
        failed_step=None if code is None else recorder.failed_step(),
        trace_started_ns=recorder.started_ns,
    )


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
