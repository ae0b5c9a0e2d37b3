"""Score a program on labelled examples with ``dspy.Evaluate``, on our 0..1 scale.

``dspy.Evaluate`` reports a percentage rounded to two decimals; we divide by 100 and
keep that rounding, so a score recorded here equals a direct ``dspy.Evaluate`` / 100.

An example whose program call raised scores 0 in ``dspy.Evaluate``, exactly like a wrong
answer, and DSPy keeps no trace of why: an LM outage would read as a bad program. So
the program and the metric are wrapped (``_Answering``, ``_Scoring``) to keep, per
example, the error code of a failed call; such an example still scores 0, so scores are
unchanged, and it is *errored*: ``Scored.errors`` counts them, its per-example entry
says ``error``. An output parse error is not one: the LM answered, badly, and that
answer scores 0 as a wrong one does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from pydantic_core import to_jsonable_python

from dspyops.runtime.failures import Failed, Tally
from dspyops.runtime.lm_errors import OUTPUT_PARSE_ERROR

# Outputs kept per example in the stored result: enough to inspect, bounded in size.
_MAX_OUTPUT_CHARS = 2_000
# DSPy's own default, given explicitly: an errored example scores what DSPy gives it.
_FAILURE_SCORE = 0.0


@dataclass(frozen=True)
class Scored:
    score: float
    per_example: list[dict[str, Any]] = field(default_factory=list)
    # One call per example; the failed ones are the errored examples.
    errors: Tally = field(default_factory=Tally)

    @property
    def errored(self) -> int:
        return self.errors.failed


def to_examples(rows: Sequence[dict[str, Any]], input_names: Sequence[str]) -> list[dspy.Example]:
    return [dspy.Example(**row).with_inputs(*input_names) for row in rows]


def score_program(
    program: dspy.Module,
    devset: list[dspy.Example],
    metric: Callable[..., Any],
    *,
    num_threads: int = 1,
) -> Scored:
    """Call inside ``dspy.context(lm=...)``."""
    if not devset:
        return Scored(0.0)
    scoring = _Scoring(metric)
    evaluator = dspy.Evaluate(
        devset=devset,
        metric=scoring,
        num_threads=num_threads,
        display_progress=False,
        # Every example may fail (scored 0) without aborting; errors are counted apart.
        max_errors=len(devset) + 1,
        failure_score=_FAILURE_SCORE,
    )
    result = evaluator(_Answering(program))
    errors = Tally()
    per_example = []
    for i, (example, prediction, score) in enumerate(result.results):
        failed = scoring.failed.get(id(example))
        errors.add(failed)
        entry: dict[str, Any] = {"index": i, "score": float(score), "outputs": _outputs(prediction)}
        if failed is not None:
            entry["error"] = failed.code
        per_example.append(entry)
    return Scored(round(float(result.score) / 100, 4), per_example, errors)


class _Answering:
    """The program as ``dspy.Evaluate`` calls it: a failed call answers ``Failed``.

    ``dspy.Evaluate`` passes the answer to the metric with the example, so ``_Scoring``
    learns which example failed and why; DSPy, given the exception, would keep neither.
    """

    def __init__(self, program: dspy.Module) -> None:
        self._program = program

    def __call__(self, **inputs: Any) -> Any:
        try:
            return self._program(**inputs)
        except Exception as exc:
            failed = Failed.of(exc)
            if failed.code == OUTPUT_PARSE_ERROR:
                raise  # the LM's answer, scored 0 by DSPy like a wrong one
            return failed


class _Scoring:
    """The metric as ``dspy.Evaluate`` calls it, keeping why an example failed, by example."""

    def __init__(self, metric: Callable[..., Any]) -> None:
        self._metric = metric
        self.failed: dict[int, Failed] = {}

    def __call__(self, example: dspy.Example, prediction: Any) -> Any:
        if isinstance(prediction, Failed):
            self.failed[id(example)] = prediction
            return _FAILURE_SCORE
        try:
            return self._metric(example, prediction)
        except Exception as exc:
            # DSPy scores it _FAILURE_SCORE; the example was not scored, it errored.
            self.failed[id(example)] = Failed.of(exc)
            raise


def _outputs(prediction: Any) -> dict[str, Any] | None:
    if prediction is None or not hasattr(prediction, "items"):
        return None
    values = to_jsonable_python(dict(prediction.items()), fallback=str)
    return {k: _bounded(v) for k, v in values.items()}


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_OUTPUT_CHARS:
        return value[:_MAX_OUTPUT_CHARS] + "..."
    return value
