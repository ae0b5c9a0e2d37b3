"""A judge program as a metric: each score is one call of the judge program.

``aggregates.app.judges`` checks a ``judge:<program_id>[@alias]`` metric when the run is
planned and says how the judge's inputs are filled (``bindings``: from the prediction,
the example's inputs, or its labels) and its score's range. Here the metric calls the
judge on its own LM (``execute_program``, as an execution runs: traced, its usage
counted) and keeps every call (``JudgeMetric.calls``): the worker records each as an
execution of the judge program when the run ends.

The score is normalised from its declared range to 0..1; a call that fails, or answers
a score that is not a number in the range, raises ``JudgeFailed``: the example is
errored (``runtime.evaluate``), not scored 0. GEPA asks for feedback with a predictor's
name: it then gets ``dspy.Prediction(score=..., feedback=<the judge's rationale>)``.
The same prediction of the same example is judged once per run (GEPA scores a
trajectory, then asks for its feedback): the second ask reuses the first verdict.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from pydantic_core import to_jsonable_python

from dspyops.runtime.executor import ExecutionOutcome, execute_program
from dspyops.runtime.lm_errors import JudgeFailed, LMErrors

SCORE = "score"


@dataclass(frozen=True)
class JudgeCall:
    """One call of the judge: what the worker records as an execution."""

    inputs: dict[str, Any]
    outcome: ExecutionOutcome


@dataclass(frozen=True)
class Judge:
    """The judge program ready to call: plain values from the run's plan."""

    name: str
    program: dspy.Module
    lm: dspy.BaseLM
    errors: LMErrors
    # Judge input -> [source, field]: "output" | "input" | "label" (aggregates.app.judges).
    bindings: Mapping[str, Sequence[str]]
    low: float
    high: float
    rationale: str | None = None
    timeout_s: float = 60.0
    steps: Sequence[str] = ()
    pass_threshold: float = 1.0
    # Where every call goes, kept by the worker: it records them when the run ends,
    # however it ends (a failed run's judge calls were made, and billed, too).
    calls: list[JudgeCall] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    score: float
    feedback: str


@dataclass
class JudgeMetric:
    """Callable the way every DSPy optimizer calls a metric (``runtime.scoring.Metric``)."""

    judge: Judge
    _verdicts: dict[str, Verdict] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.judge.name

    def __call__(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> Any:
        verdict = self.verdict(_as_dict(gold), _as_dict(pred))
        if pred_name is not None:  # GEPA asks for feedback on one predictor
            return dspy.Prediction(score=verdict.score, feedback=verdict.feedback)
        # With a trace DSPy is bootstrapping and asks "keep this demo?".
        if trace is not None:
            return verdict.score >= self.judge.pass_threshold
        return verdict.score

    def verdict(self, gold: Mapping[str, Any], pred: Mapping[str, Any]) -> Verdict:
        inputs = bound_inputs(self.judge.bindings, gold, pred)
        key = json.dumps(inputs, sort_keys=True, default=str)
        with self._lock:
            known = self._verdicts.get(key)
        if known is not None:
            return known
        outcome = asyncio.run(
            execute_program(
                self.judge.program,
                inputs,
                self.judge.lm,
                timeout_s=self.judge.timeout_s,
                errors=self.judge.errors,
                steps=list(self.judge.steps),
            )
        )
        with self._lock:
            self.judge.calls.append(JudgeCall(inputs, outcome))
        verdict = self._read(outcome)
        with self._lock:
            self._verdicts[key] = verdict
        return verdict

    def _read(self, outcome: ExecutionOutcome) -> Verdict:
        if not outcome.ok or outcome.outputs is None:
            raise JudgeFailed(f"the judge's call failed: {outcome.error_code}")
        score = normalised(outcome.outputs.get(SCORE), self.judge.low, self.judge.high)
        if score is None:
            raise JudgeFailed(
                f"the judge answered no score in [{self.judge.low:g}, {self.judge.high:g}]"
            )
        rationale = outcome.outputs.get(self.judge.rationale) if self.judge.rationale else None
        feedback = str(rationale) if rationale else f"The judge scored this {score:g} of 1."
        return Verdict(score, feedback)


def bound_inputs(
    bindings: Mapping[str, Sequence[str]], gold: Mapping[str, Any], pred: Mapping[str, Any]
) -> dict[str, Any]:
    """The judge's inputs: each from the prediction ("output") or the example."""
    inputs = {
        name: (pred if source == "output" else gold).get(field)
        for name, (source, field) in bindings.items()
    }
    return dict(to_jsonable_python(inputs, fallback=str))


def normalised(value: Any, low: float, high: float) -> float | None:
    """`value` in [low, high] as 0..1; None when it is not a number in the range."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or not low <= number <= high:
        return None
    return (number - low) / (high - low)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "toDict"):
        return dict(value.toDict())
    if hasattr(value, "items"):
        return dict(value.items())
    return {}
