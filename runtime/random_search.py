"""BootstrapFewShotWithRandomSearch driven one candidate at a time, so a run can resume.

DSPy's random search makes its candidates in seed order: -3 (zero-shot), -2 (labelled
demos), -1 (bootstrapped, train split unshuffled), then 0..N-1 (the train split shuffled
with ``random.Random(seed)``, ``random.Random(seed).randint(1, max_bootstrapped_demos)``
demos bootstrapped). It scores each with ``dspy.Evaluate`` on the dev split (a
percentage), keeps the first best (a later candidate wins only with a strictly higher
score) and stops early once one reaches ``stop_at_score``.

A candidate depends on its seed alone: every random choice is a local
``random.Random``, and the student is copied, never changed. So ``search`` runs DSPy's
own ``compile`` once per seed (its ``restrict=[seed]`` argument): the same code and the
same seeding as the whole search, not a copy of it that could drift from it. Seeds a
checkpoint already holds are skipped; each new candidate is told to ``on_scored`` (the
run records it, ``runtime.optimize``); the best is picked over both with DSPy's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy
from pydantic_core import to_jsonable_python

from dspyops.runtime.candidates import Candidate


@dataclass(frozen=True)
class Checkpoints:
    """What a run scored before it was started again, and where new candidates go."""

    # Candidates already scored, by seed (score 0..1, state as JSON).
    scored: Mapping[int, Candidate]
    # Told each candidate scored now, with its seed.
    on_scored: Callable[[int, Candidate], None]
    # Builds a program from a checkpointed state (the best may be one of those).
    rebuild: Callable[[dict[str, Any]], dspy.Module]


def _nothing_to_rebuild(state: dict[str, Any]) -> dspy.Module:
    raise AssertionError("no checkpoint to rebuild a program from")


# A fresh search that records nothing (a run that does not resume).
NO_CHECKPOINTS = Checkpoints({}, lambda seed, candidate: None, _nothing_to_rebuild)


def seeds(num_candidate_programs: int) -> range:
    """The candidates' seeds, in the order DSPy makes and scores them."""
    return range(-3, num_candidate_programs)


def search(
    optimizer: dspy.BootstrapFewShotWithRandomSearch,
    student: dspy.Module,
    *,
    trainset: list[dspy.Example],
    valset: list[dspy.Example] | None,
    checkpoints: Checkpoints,
) -> dspy.Module:
    """The program ``optimizer.compile(student, trainset=..., valset=...)`` returns,
    made candidate by candidate, without making again those ``checkpoints`` hold."""
    best_percent: float | None = None
    best_seed: int | None = None
    best_program: dspy.Module | None = None
    for seed in seeds(optimizer.num_candidate_sets):
        kept = checkpoints.scored.get(seed)
        program: dspy.Module | None = None
        if kept is not None:
            percent = to_percent(kept.score)
        else:
            compiled = optimizer.compile(student, trainset=trainset, valset=valset, restrict=[seed])
            (made,) = compiled.candidate_programs
            percent, program = made["score"], made["program"]
            state = to_jsonable_python(program.dump_state(), fallback=str)
            checkpoints.on_scored(seed, Candidate(from_percent(percent), dict(state)))
        # DSPy's rule: the first candidate with the highest score wins.
        if best_percent is None or percent > best_percent:
            best_percent, best_seed, best_program = percent, seed, program
        if optimizer.stop_at_score is not None and percent >= optimizer.stop_at_score:
            break
    if best_program is None:
        assert best_seed is not None
        best_program = checkpoints.rebuild(checkpoints.scored[best_seed].state)
    return best_program


def from_percent(percent: float) -> float:
    """dspy.Evaluate's percentage (2 decimals) as our 0..1 score (4 decimals), exactly."""
    return round(float(percent) / 100, 4)


def to_percent(score: float) -> float:
    """The percentage ``from_percent`` was given: the same float DSPy compared."""
    return round(score * 100, 2)
