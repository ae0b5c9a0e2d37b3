"""The optimizers a command may name, each with its config as a pydantic model.

Every config model forbids unknown keys, so a typo (``max_bootsrapped_demos``) is a
``CommandRejected`` at planning time instead of a silently ignored setting. Keys every
optimizer takes:

- ``time_limit_s`` (default 900, at most 6 h): the run fails with ``time_limit_exceeded``
  past it;
- ``num_threads`` (default 1, at most 16): DSPy's own parallelism inside one run;
- ``metric_options``: validated by the metric (see ``runtime.scoring``).

Optimizers (for every kind of program: they tune each predictor it has, one signature's,
a pipeline's steps' or a plugin's):

- ``LabeledFewShot``: ``k`` labelled demos, no LM calls while compiling.
- ``BootstrapFewShot``: demos from traces of the program that pass the metric.
- ``BootstrapFewShotWithRandomSearch``: several bootstrapped candidates, best on dev;
  made one at a time (``runtime.random_search``), each recorded as a checkpoint, so a
  run started again after its worker died skips the candidates already scored.
- ``MIPROv2``: instructions and demos, ``auto`` = light (default), medium or heavy;
  the profile's LM proposes the instructions (MIPROv2 needs an LM at init). Needs the
  ``optuna`` package (``dspy[optuna]``); without it MIPROv2 is rejected as unavailable.
- ``GEPA``: reflective instruction evolution; exactly one budget of ``auto``,
  ``max_full_evals``, ``max_metric_calls``; the profile's LM reflects.

``OPTIMIZERS`` is the one table, by name: config model, one compile function, and the
optional package it needs. ``parse_config`` and ``compile_program`` both look names up
there, so the name alone decides (``RandomSearchConfig`` subclassing
``BootstrapFewShotConfig`` does not matter).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import dspy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dspyops.runtime.random_search import NO_CHECKPOINTS, Checkpoints, search
from dspyops.runtime.scoring import validate_metric

ErrorDict = dict[str, Any]

DEFAULT_TIME_LIMIT_S = 900.0
MAX_TIME_LIMIT_S = 6 * 3600.0


class OptimizerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    time_limit_s: float = Field(default=DEFAULT_TIME_LIMIT_S, gt=0, le=MAX_TIME_LIMIT_S)
    num_threads: int = Field(default=1, ge=1, le=16)
    metric_options: dict[str, Any] = Field(default_factory=dict)


class LabeledFewShotConfig(OptimizerConfig):
    k: int = Field(default=16, ge=1, le=64)
    sample: bool = True


class BootstrapFewShotConfig(OptimizerConfig):
    max_bootstrapped_demos: int = Field(default=4, ge=0, le=32)
    max_labeled_demos: int = Field(default=16, ge=0, le=64)
    max_rounds: int = Field(default=1, ge=1, le=10)
    max_errors: int | None = Field(default=None, ge=1)


class RandomSearchConfig(BootstrapFewShotConfig):
    num_candidate_programs: int = Field(default=8, ge=1, le=64)
    stop_at_score: float | None = Field(default=None, ge=0.0, le=1.0)


class MIPROv2Config(OptimizerConfig):
    auto: Literal["light", "medium", "heavy"] = "light"
    max_bootstrapped_demos: int = Field(default=4, ge=0, le=32)
    max_labeled_demos: int = Field(default=4, ge=0, le=64)
    seed: int = 9
    minibatch: bool = True
    minibatch_size: int = Field(default=35, ge=1, le=1000)


class GEPAConfig(OptimizerConfig):
    auto: Literal["light", "medium", "heavy"] | None = None
    max_full_evals: int | None = Field(default=None, ge=1, le=1000)
    max_metric_calls: int | None = Field(default=None, ge=1, le=100_000)
    reflection_minibatch_size: int = Field(default=3, ge=1, le=100)
    seed: int = 0

    @model_validator(mode="after")
    def _one_budget(self) -> GEPAConfig:
        given = [self.auto, self.max_full_evals, self.max_metric_calls]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of auto, max_full_evals, max_metric_calls")
        return self


@dataclass(frozen=True)
class Job:
    """What every optimizer compiles with, besides its config."""

    student: dspy.Module
    metric: Callable[..., Any]
    trainset: list[dspy.Example]
    devset: list[dspy.Example]
    lm: dspy.BaseLM
    # What a resumable optimizer (``Optimizer.resumable``) scored before, and where it
    # tells new candidates; None: a fresh run that records nothing.
    checkpoints: Checkpoints | None = None


def _labeled_few_shot(config: LabeledFewShotConfig, job: Job) -> dspy.Module:
    return dspy.LabeledFewShot(k=config.k).compile(
        job.student, trainset=job.trainset, sample=config.sample
    )


def _bootstrap_few_shot(config: BootstrapFewShotConfig, job: Job) -> dspy.Module:
    return dspy.BootstrapFewShot(
        metric=job.metric,
        max_bootstrapped_demos=config.max_bootstrapped_demos,
        max_labeled_demos=config.max_labeled_demos,
        max_rounds=config.max_rounds,
        max_errors=config.max_errors,
    ).compile(job.student, trainset=job.trainset)


def _random_search(config: RandomSearchConfig, job: Job) -> dspy.Module:
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=job.metric,
        max_bootstrapped_demos=config.max_bootstrapped_demos,
        max_labeled_demos=config.max_labeled_demos,
        max_rounds=config.max_rounds,
        num_candidate_programs=config.num_candidate_programs,
        num_threads=config.num_threads,
        max_errors=config.max_errors,
        # Our scores are 0..1, DSPy's random search compares percentages.
        stop_at_score=None if config.stop_at_score is None else config.stop_at_score * 100,
    )
    # Candidate by candidate (runtime.random_search): the same result as its compile.
    return search(
        optimizer,
        job.student,
        trainset=job.trainset,
        valset=job.devset or None,
        checkpoints=job.checkpoints or NO_CHECKPOINTS,
    )


def _miprov2(config: MIPROv2Config, job: Job) -> dspy.Module:
    valset = job.devset or job.trainset
    # MIPROv2 reads dspy.settings.lm at init; pass the profile's LM explicitly.
    return dspy.MIPROv2(
        metric=job.metric,
        prompt_model=job.lm,
        task_model=job.lm,
        auto=config.auto,
        max_bootstrapped_demos=config.max_bootstrapped_demos,
        max_labeled_demos=config.max_labeled_demos,
        num_threads=config.num_threads,
        seed=config.seed,
        verbose=False,
    ).compile(
        job.student,
        trainset=job.trainset,
        valset=valset,
        minibatch=config.minibatch and len(valset) > config.minibatch_size,
        minibatch_size=min(config.minibatch_size, len(valset)),
        requires_permission_to_run=False,
    )


def _gepa(config: GEPAConfig, job: Job) -> dspy.Module:
    return dspy.GEPA(
        metric=job.metric,
        auto=config.auto,
        max_full_evals=config.max_full_evals,
        max_metric_calls=config.max_metric_calls,
        reflection_minibatch_size=config.reflection_minibatch_size,
        reflection_lm=job.lm,
        num_threads=config.num_threads,
        seed=config.seed,
        track_stats=False,
    ).compile(job.student, trainset=job.trainset, valset=job.devset or None)


C = TypeVar("C", bound=OptimizerConfig)


@dataclass(frozen=True)
class Optimizer(Generic[C]):
    """One optimizer a command may name: its config model and how it compiles."""

    config: type[C]
    compile: Callable[[C, Job], dspy.Module]
    # An optional package the optimizer imports only when it runs: without it the command
    # is rejected up front instead of failing after it was accepted.
    requires: str | None = None
    # The seed DSPy itself fixes for an optimizer whose config has no `seed` (recorded in
    # a run's provenance); None when it fixes none that one number describes.
    fixed_seed: int | None = None
    # Records each scored candidate as a checkpoint, and skips those a run started
    # again already holds (``Job.checkpoints``); the others start over.
    resumable: bool = False


# The one table: parse_config and compile_program both look the name up here.
OPTIMIZERS: dict[str, Optimizer[Any]] = {
    # DSPy samples LabeledFewShot's demos and shuffles BootstrapFewShot's with
    # random.Random(0); random search seeds its candidate i with random.Random(i).
    "LabeledFewShot": Optimizer(LabeledFewShotConfig, _labeled_few_shot, fixed_seed=0),
    "BootstrapFewShot": Optimizer(BootstrapFewShotConfig, _bootstrap_few_shot, fixed_seed=0),
    "BootstrapFewShotWithRandomSearch": Optimizer(
        RandomSearchConfig, _random_search, resumable=True
    ),
    "MIPROv2": Optimizer(MIPROv2Config, _miprov2, requires="optuna"),
    "GEPA": Optimizer(GEPAConfig, _gepa, requires="gepa"),
}


class InvalidConfig(ValueError):
    def __init__(self, errors: list[ErrorDict]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def parse_config(optimizer: str, config: dict[str, Any]) -> OptimizerConfig:
    entry = OPTIMIZERS.get(optimizer)
    if entry is None:
        raise InvalidConfig(
            [
                {
                    "loc": ["optimizer"],
                    "msg": f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}",
                    "type": "unknown_optimizer",
                }
            ]
        )
    missing = entry.requires
    if missing and importlib.util.find_spec(missing) is None:
        raise InvalidConfig(
            [
                {
                    "loc": ["optimizer"],
                    "msg": f"{optimizer} needs the package {missing!r}, not installed here",
                    "type": "optimizer_unavailable",
                }
            ]
        )
    try:
        return entry.config.model_validate(config)
    except ValidationError as exc:
        raise InvalidConfig(
            [
                {"loc": ["config", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False)
            ]
        ) from exc


def validate_optimization(optimizer: str, metric: str, config: dict[str, Any]) -> list[ErrorDict]:
    """`DspyOps(validate_config=...)`: every problem with optimizer, metric and config."""
    try:
        parsed = parse_config(optimizer, config)
    except InvalidConfig as exc:
        errors = exc.errors
        options = config.get("metric_options", {}) if isinstance(config, dict) else {}
        metric_errors = validate_metric(metric, options)
        # metric_options errors were already reported by the config model when not a dict.
        return errors + [e for e in metric_errors if e not in errors]
    return validate_metric(metric, parsed.metric_options)


def compile_program(
    optimizer: str,
    config: OptimizerConfig,
    student: dspy.Module,
    *,
    metric: Callable[..., Any],
    trainset: list[dspy.Example],
    devset: list[dspy.Example],
    lm: dspy.BaseLM,
    checkpoints: Checkpoints | None = None,
) -> dspy.Module:
    """Run the optimizer; call inside ``dspy.context(lm=lm)``. ``checkpoints``: for a
    resumable one, what the run scored before and where new candidates go."""
    entry = OPTIMIZERS.get(optimizer)
    if entry is None:
        raise InvalidConfig(
            [{"loc": ["optimizer"], "msg": "no compiler", "type": "unknown_optimizer"}]
        )
    if type(config) is not entry.config:
        raise TypeError(f"{optimizer} takes {entry.config.__name__}, not {type(config).__name__}")
    return entry.compile(config, Job(student, metric, trainset, devset, lm, checkpoints))
