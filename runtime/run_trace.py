"""The spans of an optimization or evaluation run's DSPy calls, bounded per phase.

An execution records its whole trace (``runtime.trace``) and the worker turns it into
spans afterwards. A run may make thousands of program calls, so a run's trace is cut
into phases (an optimization's ``baseline``, ``compile`` and ``optimized``, an
evaluation's ``score``), each a span of its own under the command's ``run`` span. Inside
a phase, every program call the run makes (one per example scored, per demo
bootstrapped, ...) is a ``program`` span with its predictors' and LM calls' spans under
it, as in an execution's trace; an LM call made outside a program call (an optimizer's
own) is an ``lm`` span directly under the phase.

Bounded: a phase keeps at most ``limit`` spans (``MAX_PHASE_SPANS``), the first ones
opened; past that, a span is not recorded, only counted, and so are its children. The
phase span says how many were kept and dropped (``dspyops.spans.kept``,
``dspyops.spans.dropped``). A program call's spans are handed on (``emit``) when that
call ends, not when the run does, so a long run's spans arrive while it works and the
recorder holds only the calls still open.

The runtime knows nothing of OpenTelemetry: the worker gives the phase's span
(``stage``) and what turns a finished call's tree into spans (``emit``,
``consumers.telemetry.Telemetry.program``). ``NO_TRACE`` records nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import dspy

from dspyops.runtime.trace import Span, TraceRecorder, current
from dspyops.runtime.traced import instrument, instrument_lm

log = logging.getLogger(__name__)

# Spans a phase keeps: a 10,000-call run sends at most this many per phase.
MAX_PHASE_SPANS = 500
_DROPPED = "dropped"

Emit = Callable[[dict[str, Any], int], None]


class PhaseRecorder(TraceRecorder):
    """Records one phase's calls, at most ``limit`` spans; each top-level call's tree goes
    to ``emit`` (with the recorder's start, ns since the epoch) when it ends."""

    def __init__(
        self, emit: Emit, limit: int, *, redact: Callable[[str], str] | None = None
    ) -> None:
        super().__init__(redact=redact)
        self._emit = emit
        self.limit = limit
        self.kept = 0
        self.dropped = 0
        # Optimizers score in DSPy's worker threads: the counts and roots are shared.
        self._lock = threading.Lock()

    def open_span(
        self, parent: Span | None, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Span:
        with self._lock:
            keep = self.kept < self.limit and (parent is None or parent.kind != _DROPPED)
            if keep:
                self.kept += 1
            else:
                self.dropped += 1
        if not keep:
            # Stands for the call while it runs (its children are dropped too); held by
            # nothing, never emitted.
            return Span(_DROPPED, "", "", time.monotonic(), id(instance))
        # A new root is appended; roots are only deleted under the lock (close_span).
        return super().open_span(parent, instance, args, kwargs)

    def close_span(self, span: Span, outputs: Any, exception: BaseException | None) -> None:
        if span.kind == _DROPPED:
            return
        super().close_span(span, outputs, exception)
        with self._lock:
            index = next((i for i, root in enumerate(self.roots) if root is span), None)
            if index is not None:
                del self.roots[index]
        if index is not None:
            try:
                self._emit(self._json(span), self.started_ns)
            except Exception:
                # Spans are informative: making or pricing them must not fail the run's
                # program call, which is closing here (in DSPy's thread).
                log.warning("could not emit a run's spans", exc_info=True)


def record_usage(usage: dict[str, Any]) -> None:
    """An LM response's usage to the open LM span of whatever is recording, if any."""
    frame = current.get()
    if frame is not None:
        frame.recorder.add_usage(usage)


class NoTrace:
    """Records nothing: tracing off, or the run's trace not sampled."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield

    def traced(self, program: dspy.Module, steps: Sequence[str]) -> dspy.Module:
        return program

    def traced_lm(self, lm: dspy.BaseLM) -> dspy.BaseLM:
        return lm


NO_TRACE = NoTrace()


@dataclass(frozen=True)
class RunTrace(NoTrace):
    """A run's phases as spans (``stage``) and its calls' spans in them (``emit``)."""

    # The phase's span, current inside the block; what it yields has ``attributes`` (a
    # dict) to say how many spans were kept and dropped, or is None.
    stage: Callable[[str], AbstractContextManager[Any]]
    emit: Emit
    redact: Callable[[str], str] | None = None
    limit: int = MAX_PHASE_SPANS

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with self.stage(name) as details:
            recorder = PhaseRecorder(self.emit, self.limit, redact=self.redact)
            try:
                with recorder.recording():
                    yield
            finally:
                attributes = getattr(details, "attributes", None)
                if isinstance(attributes, dict):
                    attributes["dspyops.spans.kept"] = recorder.kept
                    attributes["dspyops.spans.dropped"] = recorder.dropped

    def traced(self, program: dspy.Module, steps: Sequence[str]) -> dspy.Module:
        """``program`` made traced, in place (``runtime.traced``)."""
        return instrument(program, steps=steps)

    def traced_lm(self, lm: dspy.BaseLM) -> dspy.BaseLM:
        return instrument_lm(lm)
