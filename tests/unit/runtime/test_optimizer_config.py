"""Optimizer configs: closed per optimizer, checked before a run is accepted."""

from __future__ import annotations

import pytest

from dspyops.aggregates.app import Checks, CommandContext, DspyOps, Outcome, handle
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.events.commands import OptimizeProgram, RegisterDataset, RegisterProgram
from dspyops.runtime.optimizers import OPTIMIZERS, GEPAConfig, parse_config, validate_optimization


def test_every_optimizer_accepts_an_empty_config_but_gepa_needs_a_budget() -> None:
    for name in OPTIMIZERS:
        if name == "GEPA":
            assert validate_optimization(name, "f1", {})[0]["loc"] == ["config"]
            assert isinstance(parse_config(name, {"auto": "light"}), GEPAConfig)
        else:
            assert validate_optimization(name, "f1", {}) == []


@pytest.mark.parametrize(
    ("optimizer", "config", "loc", "kind"),
    [
        (
            "BootstrapFewShot",
            {"max_bootsrapped_demos": 2},
            ["config", "max_bootsrapped_demos"],
            "extra_forbidden",
        ),
        ("LabeledFewShot", {"k": 0}, ["config", "k"], "greater_than_equal"),
        ("MIPROv2", {"auto": "huge"}, ["config", "auto"], "literal_error"),
        ("MIPROv2", {"num_trials": 3}, ["config", "num_trials"], "extra_forbidden"),
        (
            "BootstrapFewShotWithRandomSearch",
            {"time_limit_s": 0},
            ["config", "time_limit_s"],
            "greater_than",
        ),
        ("GEPA", {"auto": "light", "max_metric_calls": 5}, ["config"], "value_error"),
        ("SGD", {}, ["optimizer"], "unknown_optimizer"),
    ],
)
def test_bad_configs_name_the_key(
    optimizer: str, config: dict[str, object], loc: list[str], kind: str
) -> None:
    errors = validate_optimization(optimizer, "exact_match", config)
    assert [(e["loc"], e["type"]) for e in errors] == [(loc, kind)]


def test_metric_problems_are_reported_with_config_problems() -> None:
    errors = validate_optimization("BootstrapFewShot", "bleu", {"nope": 1})
    assert {e["type"] for e in errors} == {"extra_forbidden", "unknown_metric"}


def test_the_application_rejects_a_bad_config_and_records_no_run() -> None:
    app = DspyOps(env=in_memory_env(), checks=Checks(optimization=validate_optimization))

    def ctx(n: str) -> CommandContext:
        return CommandContext(command_id=n, correlation_id=n)

    handle(app, RegisterProgram(program_id="p", name="p", signature="q: str -> a: str"), ctx("1"))
    handle(
        app, RegisterDataset(dataset_id="d", name="d", examples=[{"q": "x", "a": "y"}]), ctx("2")
    )
    cmd = OptimizeProgram(program_id="p", dataset_id="d", config={"k": 3})
    outcome = handle(app, cmd, ctx("3"))
    assert isinstance(outcome, Outcome)
    assert outcome.rejected
    assert outcome.data["errors"][0]["loc"] == ["config", "k"]
