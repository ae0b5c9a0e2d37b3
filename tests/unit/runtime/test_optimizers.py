"""Optimizer dispatch: each name builds its own DSPy optimizer, with its own settings.

The DSPy optimizer classes are replaced by recording fakes: what is checked is which
class the table reaches for a name and what it is given, not what DSPy then does
(tests/unit/runtime/test_optimize.py and the integration tests run the real ones).
"""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from dspy.utils import DummyLM

from dspyops.runtime.optimizers import (
    OPTIMIZERS,
    BootstrapFewShotConfig,
    InvalidConfig,
    RandomSearchConfig,
    compile_program,
    parse_config,
)
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature

# Name a command uses -> the DSPy class it must build.
DSPY_CLASSES = {
    "LabeledFewShot": "LabeledFewShot",
    "BootstrapFewShot": "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch": "BootstrapFewShotWithRandomSearch",
    "MIPROv2": "MIPROv2",
    "GEPA": "GEPA",
}
# The smallest valid config per name: only GEPA needs a key (its budget).
SMALLEST_CONFIG: dict[str, dict[str, Any]] = {"GEPA": {"auto": "light"}}

Call = tuple[str, str, dict[str, Any]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    recorded: list[Call] = []
    for name in set(DSPY_CLASSES.values()):
        monkeypatch.setattr(dspy, name, _recording(name, recorded))
    return recorded


def _recording(name: str, recorded: list[Call]) -> type:
    class Fake:
        def __init__(self, **kwargs: Any) -> None:
            recorded.append((name, "init", kwargs))
            # What runtime.random_search reads of DSPy's random search.
            self.num_candidate_sets = kwargs.get("num_candidate_programs")
            self.stop_at_score = kwargs.get("stop_at_score")

        def compile(self, student: Any, **kwargs: Any) -> Any:
            recorded.append((name, "compile", kwargs))
            # Random search is made one candidate (`restrict`) at a time: each scores 0.
            student.candidate_programs = [{"score": 0.0, "program": student}]
            return student

    Fake.__name__ = name
    return Fake


def compile_with(
    optimizer: str, config: dict[str, Any], *, devset: list[dspy.Example] | None = None
) -> tuple[dspy.Module, dspy.BaseLM]:
    student = dspy.Predict(dspy_signature(compile_signature("q: str -> a: str")))
    lm = DummyLM([])
    train = [dspy.Example(q=str(i), a=str(i)).with_inputs("q") for i in range(4)]
    result = compile_program(
        optimizer,
        parse_config(optimizer, config),
        student,
        metric=lambda *args: 1.0,
        trainset=train,
        devset=train[:2] if devset is None else devset,
        lm=lm,
    )
    assert result is student
    return student, lm


def test_the_table_names_every_optimizer() -> None:
    assert list(OPTIMIZERS) == list(DSPY_CLASSES)


@pytest.mark.parametrize("optimizer", list(DSPY_CLASSES))
def test_each_name_builds_its_own_dspy_optimizer(optimizer: str, calls: list[Call]) -> None:
    compile_with(optimizer, SMALLEST_CONFIG.get(optimizer, {}))
    expected = DSPY_CLASSES[optimizer]
    # Random search compiles once per candidate: 3 fixed ones and 8 by default.
    compiles = 11 if optimizer == "BootstrapFewShotWithRandomSearch" else 1
    assert [(name, step) for name, step, _ in calls] == [
        (expected, "init"),
        *[(expected, "compile")] * compiles,
    ]


def test_random_search_gets_its_candidates_and_a_percentage_stop(calls: list[Call]) -> None:
    compile_with(
        "BootstrapFewShotWithRandomSearch",
        {"num_candidate_programs": 3, "stop_at_score": 0.9, "num_threads": 2},
    )
    init, fit = calls[0][2], calls[1][2]
    assert (init["num_candidate_programs"], init["stop_at_score"]) == (3, 90.0)
    assert (init["num_threads"], init["max_bootstrapped_demos"], init["max_rounds"]) == (2, 4, 1)
    assert len(fit["valset"]) == 2
    # One candidate per compile, in DSPy's order (tests/unit/runtime/test_random_search.py).
    assert [kwargs["restrict"] for _, _, kwargs in calls[1:]] == [[s] for s in range(-3, 3)]


def test_bootstrap_gets_only_its_own_settings(calls: list[Call]) -> None:
    compile_with("BootstrapFewShot", {"max_rounds": 2, "max_errors": 3})
    init, fit = calls[0][2], calls[1][2]
    assert set(init) == {
        "metric",
        "max_bootstrapped_demos",
        "max_labeled_demos",
        "max_rounds",
        "max_errors",
    }
    assert (init["max_rounds"], init["max_errors"]) == (2, 3)
    assert set(fit) == {"trainset"}


def test_labeled_few_shot_gets_k_and_sample(calls: list[Call]) -> None:
    compile_with("LabeledFewShot", {"k": 2, "sample": False})
    assert calls[0][2] == {"k": 2}
    assert calls[1][2]["sample"] is False


def test_miprov2_and_gepa_get_the_profile_lm(calls: list[Call]) -> None:
    _, lm = compile_with("MIPROv2", {"auto": "medium", "minibatch_size": 50})
    init, fit = calls[0][2], calls[1][2]
    assert init["prompt_model"] is lm
    assert init["task_model"] is lm
    assert init["auto"] == "medium"
    assert (fit["minibatch"], fit["minibatch_size"], fit["requires_permission_to_run"]) == (
        False,
        2,
        False,
    )
    calls.clear()
    _, lm = compile_with("GEPA", {"max_metric_calls": 10}, devset=[])
    init, fit = calls[0][2], calls[1][2]
    assert init["reflection_lm"] is lm
    assert (init["auto"], init["max_metric_calls"]) == (None, 10)
    assert fit["valset"] is None


def test_a_config_of_another_optimizer_is_refused(calls: list[Call]) -> None:
    # RandomSearchConfig is a BootstrapFewShotConfig subclass: the name decides, not the type.
    student = dspy.Predict(dspy_signature(compile_signature("q: str -> a: str")))
    with pytest.raises(TypeError, match="BootstrapFewShot takes BootstrapFewShotConfig"):
        compile_program(
            "BootstrapFewShot",
            RandomSearchConfig(),
            student,
            metric=lambda *args: 1.0,
            trainset=[],
            devset=[],
            lm=DummyLM([]),
        )
    with pytest.raises(InvalidConfig, match="no compiler"):
        compile_program(
            "SGD",
            BootstrapFewShotConfig(),
            student,
            metric=lambda *args: 1.0,
            trainset=[],
            devset=[],
            lm=DummyLM([]),
        )
    assert calls == []
