"""Provenance: the models that answered a run, and what it ran with."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy
import pytest
from dspy.clients.base_lm import GLOBAL_HISTORY

from dspyops.runtime.optimize import run_evaluation, run_optimization
from dspyops.runtime.profiles import LMProfile, offline_profile
from dspyops.runtime.provenance import ResponseModels, package_version, run_provenance
from dspyops.runtime.run_state import RunState
from tests.support.optimization import few_shot_lm
from tests.unit.runtime.test_optimize import DEV, ERRORS, SPEC, TRAIN


def _as_a_worker(work: Any) -> Any:
    """In a thread with LM history off, as workers run (configure_dspy_for_workers)."""

    def run() -> Any:
        with dspy.context(disable_history=True):
            return work()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_a_run_reports_the_models_that_answered_and_records_no_history() -> None:
    lm = few_shot_lm()
    models = ResponseModels()
    before = len(GLOBAL_HISTORY)

    result = _as_a_worker(
        lambda: run_optimization(
            SPEC,
            optimizer="BootstrapFewShot",
            metric_name="exact_match",
            config={"max_bootstrapped_demos": 2, "max_labeled_demos": 1},
            trainset=TRAIN,
            devset=DEV,
            lm=lm,
            state=RunState(60),
            errors=ERRORS,
            models=models,
        )
    )

    assert result.optimized_score == 1.0
    # The scripted engine answers as model "scripted": LiteLLM's response model.
    assert models.sorted() == ["scripted"]
    # The profile's shared LM and DSPy's global history kept nothing.
    assert (lm.history, len(GLOBAL_HISTORY)) == ([], before)


def test_an_evaluation_reports_the_models_that_answered() -> None:
    models = ResponseModels()
    _as_a_worker(
        lambda: run_evaluation(
            SPEC,
            metric_name="exact_match",
            devset=DEV,
            lm=few_shot_lm(),
            state=RunState(60),
            errors=ERRORS,
            models=models,
        )
    )
    assert models.sorted() == ["scripted"]


@pytest.mark.parametrize(
    ("optimizer", "config", "seed"),
    [
        ("MIPROv2", {}, 9),
        ("GEPA", {"auto": "light", "seed": 7}, 7),
        ("LabeledFewShot", {"k": 2}, 0),
        ("BootstrapFewShot", {}, 0),
        ("BootstrapFewShotWithRandomSearch", {}, None),
    ],
)
def test_provenance_records_the_config_as_used_and_its_seed(
    optimizer: str, config: dict[str, Any], seed: int | None
) -> None:
    profile = LMProfile(name="default", model="openai/gpt-4o-mini")
    found = run_provenance(profile, ["gpt-4o-mini-2024-07-18"], optimizer=optimizer, config=config)
    assert found.seed == seed
    assert found.optimizer_config is not None
    assert found.optimizer_config["time_limit_s"] == 900.0  # a default, filled in
    assert found.dspy_version == package_version("dspy") == dspy.__version__
    assert found.dspyops_version == package_version("dspyops")
    assert found.dspyops_version is not None
    assert [p.model_dump() for p in found.lm_profiles] == [
        {
            "profile": "default",
            "model": "openai/gpt-4o-mini",
            "offline": False,
            "response_models": ["gpt-4o-mini-2024-07-18"],
        }
    ]


def test_an_evaluation_has_no_optimizer_config_or_seed() -> None:
    found = run_provenance(offline_profile("default"), ["offline"])
    assert (found.optimizer_config, found.seed) == (None, None)
    assert found.lm_profiles[0].offline
