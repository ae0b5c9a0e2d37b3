"""What a completed run records about what it ran with: its dataset version and its
provenance, in the result and in the run's completed event."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dspyops.aggregates.app import EvaluationPlan, handle
from dspyops.consumers.evaluations import EvaluationJobs
from dspyops.events.commands import EvaluateProgram, OptimizeProgram
from dspyops.events.envelope import command_envelope
from dspyops.runtime.provenance import package_version
from dspyops.runtime.redaction import Redactor
from tests.unit.consumers.test_runs import _ctx, _jobs, run

# ScriptedProfiles' one profile, answered by an engine that names its model "scripted".
PROFILES = [
    {
        "profile": "default",
        "model": "scripted/lm",
        "offline": False,
        "response_models": ["scripted"],
    }
]


async def test_a_completed_optimization_records_its_provenance() -> None:
    jobs, _ = _jobs()
    data: dict[str, Any] = {"program_id": "p", "dataset_id": "d", "optimizer": "LabeledFewShot"}
    envelope = command_envelope("OptimizeProgram", data, subject="p")
    outcome = await run(jobs, envelope, OptimizeProgram.model_validate(data), _ctx(envelope.id))

    assert outcome.result_type == "OptimizationCompleted"
    provenance = outcome.data["provenance"]
    assert provenance["dspy_version"] == package_version("dspy")
    assert provenance["dspyops_version"] == package_version("dspyops")
    assert provenance["seed"] == 0
    assert provenance["optimizer_config"]["k"] == 16  # the default, as used
    assert provenance["lm_profiles"] == PROFILES
    assert outcome.data["dataset_version"] == 1
    assert jobs.app.optimization(envelope.id).provenance == provenance


async def test_a_completed_evaluation_records_its_provenance() -> None:
    jobs, _ = _jobs()
    evaluations = EvaluationJobs(
        app=jobs.app,
        profiles=jobs.profiles,
        pool=ThreadPoolExecutor(1),
        poll_interval_s=0.01,
        redactor=Redactor(),
    )
    plan = handle(jobs.app, EvaluateProgram(program_id="p", dataset_id="d"), _ctx("e1"))
    assert isinstance(plan, EvaluationPlan), plan

    outcome = await evaluations.evaluate(command_envelope("EvaluateProgram", {}), plan, _ctx("e"))

    assert outcome.result_type == "EvaluationCompleted"
    provenance = outcome.data["provenance"]
    assert (provenance["optimizer_config"], provenance["seed"]) == (None, None)
    assert provenance["lm_profiles"] == PROFILES
    assert outcome.data["dataset_version"] == 1
    assert jobs.app.evaluation("e1").provenance == provenance
