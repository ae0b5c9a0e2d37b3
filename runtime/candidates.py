"""What a run sees of the candidates an optimizer scores on the dev split while compiling:
the best score so far, for progress (``DevScores``), and the best candidate, for a run
stopped over budget (``BestCandidate``).

Optimizers that search score their candidates with ``dspy.Evaluate`` over the dev split:
``BootstrapFewShotWithRandomSearch`` each candidate program, ``MIPROv2`` its full
evaluations (minibatches are left out: their scores are not comparable), ``GEPA`` each
candidate on its validation set (our dev split). ``BestCandidate`` is a DSPy callback
that keeps the state of the best of those, so a run the budget stops can still keep it
as a version (``runtime.optimize``). ``LabeledFewShot`` and ``BootstrapFewShot`` score
no candidate while compiling: a stopped run of theirs has nothing to keep.

An evaluation counts only when it ended with the run not stopped: a stop makes every
later LM call fail, and such a score measures the stop, not the candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback
from pydantic_core import to_jsonable_python

from dspyops.runtime.run_state import RunState


class DevScores(BaseCallback):
    """Best score so far while compiling: every ``dspy.Evaluate`` over the whole dev split.

    Optimizers that search (random search, MIPROv2) score candidates with
    ``dspy.Evaluate``; evaluations on a minibatch are left out, their scores are not
    comparable with the dev split's.
    """

    def __init__(self, state: RunState, dev_size: int) -> None:
        self._state = state
        self._dev_size = dev_size
        self._sizes: dict[str, int] = {}

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        devset = inputs.get("devset") or getattr(instance, "devset", None) or []
        self._sizes[call_id] = len(devset)

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        size = self._sizes.pop(call_id, 0)
        score = getattr(outputs, "score", None)
        if exception is None and size == self._dev_size and isinstance(score, int | float):
            self._state.saw_score(round(float(score) / 100, 4))


@dataclass(frozen=True)
class Candidate:
    score: float  # 0..1, as ``runtime.evaluate.score_program`` would give it
    state: dict[str, Any]  # the program's ``dump_state()``, as JSON


class BestCandidate(BaseCallback):
    """Install while compiling; ``best`` is the best candidate scored on ``dev`` so far."""

    def __init__(self, state: RunState, dev: Sequence[dspy.Example]) -> None:
        self._state = state
        self._dev = list(dev)
        self._scoring: dict[str, dspy.Module] = {}
        self.best: Candidate | None = None

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        program = inputs.get("program")
        devset = inputs.get("devset") or getattr(instance, "devset", None) or []
        if isinstance(program, dspy.Module) and self._is_dev(devset):
            self._scoring[call_id] = program

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        program = self._scoring.pop(call_id, None)
        score = getattr(outputs, "score", None)
        if program is None or exception is not None or self._state.reason is not None:
            return
        if not isinstance(score, int | float) or isinstance(score, bool):
            return
        # dspy.Evaluate gives a percentage rounded to 2 decimals: the same rounding as ours.
        score = round(float(score) / 100, 4)
        if self.best is None or score > self.best.score:
            state = to_jsonable_python(program.dump_state(), fallback=str)
            self.best = Candidate(score, dict(state))

    def _is_dev(self, devset: Sequence[Any]) -> bool:
        """The same examples as the dev split (optimizers may pass a copy of the list)."""
        if len(devset) != len(self._dev):
            return False
        return all(a is b or a == b for a, b in zip(devset, self._dev, strict=True))
