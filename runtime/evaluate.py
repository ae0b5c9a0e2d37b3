"""Score a program on labelled examples with ``dspy.Evaluate``, on our 0..1 scale.

``dspy.Evaluate`` reports a percentage rounded to two decimals; we divide by 100 and
keep that rounding, so a score recorded here equals a direct ``dspy.Evaluate`` / 100.
Failed examples (an LM or parse error) score 0, as in DSPy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from pydantic_core import to_jsonable_python

# Outputs kept per example in the stored result: enough to inspect, bounded in size.
_MAX_OUTPUT_CHARS = 2_000


@dataclass(frozen=True)
class Scored:
    score: float
    per_example: list[dict[str, Any]] = field(default_factory=list)


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
    evaluator = dspy.Evaluate(
        devset=devset,
        metric=metric,
        num_threads=num_threads,
        display_progress=False,
        # Every example may fail (scored 0) without aborting: the score says how bad.
        max_errors=len(devset) + 1,
    )
    result = evaluator(program)
    per_example = [
        {"index": i, "score": float(score), "outputs": _outputs(prediction)}
        for i, (_, prediction, score) in enumerate(result.results)
    ]
    return Scored(round(float(result.score) / 100, 4), per_example)


def _outputs(prediction: Any) -> dict[str, Any] | None:
    if prediction is None or not hasattr(prediction, "items"):
        return None
    values = to_jsonable_python(dict(prediction.items()), fallback=str)
    return {k: _bounded(v) for k, v in values.items()}


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_OUTPUT_CHARS:
        return value[:_MAX_OUTPUT_CHARS] + "..."
    return value
