"""Metrics by name: how a prediction is scored against a labelled example, 0..1.

A command names a metric, never sends code. Built in:

=================  ==========================================================
``exact_match``    normalised text equal (numbers compared as numbers)
``f1``             SQuAD-style token-overlap F1
``contains``       the normalised label occurs inside the prediction
``numeric_close``  both parse as numbers and differ by at most ``tolerance``
=================  ==========================================================

(the field scores themselves are in ``runtime.field_scores``). Each scores every
selected output field and averages them. The selection is
``fields`` in the options, else the ``name:field,field`` suffix of the metric name
(EvaluateProgram carries no options), else every output field the example labels.

Options come from ``config.metric_options`` of OptimizeProgram and are validated by
the metric's own pydantic model (unknown keys rejected). ``pass_threshold`` turns the
score into pass/fail where DSPy asks for one: bootstrapping keeps a demo only when
its trace passes.

Judge programs: ``judge:<program_id>[@alias]`` names a registered program that scores
(``runtime.judge``); the domain checks the program when a run is planned
(``aggregates.app.judges``), so here only its options are: ``pass_threshold`` alone.

Third-party metrics: a Python entry point in the group ``dspyops.metrics`` whose
object is ``metric(gold: dict, pred: dict, **options) -> float`` (0..1); if it has an
``Options`` attribute (a pydantic model) the options are validated with it, else
none are accepted. Built-in names cannot be shadowed.

This module is long because every kind of metric name (built in, entry point, judge)
is resolved and its options validated here, the one place a metric name is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dspyops.runtime.field_scores import contains, exact_match, f1, numeric_close

M = TypeVar("M", bound=BaseModel)

ENTRY_POINT_GROUP = "dspyops.metrics"
# A judge program as the metric (the domain's aggregates.app.judges.PREFIX).
JUDGE_PREFIX = "judge:"

ErrorDict = dict[str, Any]


class UnknownMetric(LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown metric {name!r}; known: {', '.join(metric_names())}")


class MetricOptionsError(ValueError):
    def __init__(self, errors: list[ErrorDict]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e["msg"]) for e in errors))


class MetricOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: list[str] | None = Field(default=None, min_length=1)
    pass_threshold: float = Field(default=1.0, ge=0.0, le=1.0)


class TextOptions(MetricOptions):
    case_sensitive: bool = False


class NumericOptions(MetricOptions):
    tolerance: float = Field(default=1e-6, ge=0.0)
    # When true, tolerance is a fraction of the label's magnitude.
    relative: bool = False


@dataclass(frozen=True)
class _Builtin:
    options: type[MetricOptions]
    field_score: Callable[..., float]


BUILTIN: dict[str, _Builtin] = {
    "exact_match": _Builtin(TextOptions, exact_match),
    "f1": _Builtin(MetricOptions, f1),
    "contains": _Builtin(TextOptions, contains),
    "numeric_close": _Builtin(NumericOptions, numeric_close),
}


# --- third-party metrics ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _plugins() -> dict[str, Any]:
    """Entry points by name, read once per process (installing one needs a restart)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN}


def metric_names() -> list[str]:
    return sorted({*BUILTIN, *_plugins()})


def split_name(spec: str) -> tuple[str, list[str] | None]:
    """``"exact_match:answer,label"`` -> ("exact_match", ["answer", "label"])."""
    name, _, fields = spec.partition(":")
    selected = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    return name.strip(), selected


# --- the metric DSPy calls ------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """Scores a prediction 0..1; callable the way every DSPy optimizer calls a metric."""

    name: str
    fields: tuple[str, ...]
    pass_threshold: float
    score_fields: Callable[[Mapping[str, Any], Mapping[str, Any]], float]

    def score(self, gold: Mapping[str, Any], pred: Mapping[str, Any]) -> float:
        value = float(self.score_fields(gold, pred))
        if not math.isfinite(value):
            return 0.0
        return min(1.0, max(0.0, value))

    def __call__(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> float | bool:
        value = self.score(_as_mapping(gold), _as_mapping(pred))
        # With a trace DSPy is bootstrapping and asks "keep this demo?".
        if trace is not None and pred_name is None:
            return value >= self.pass_threshold
        return value


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if hasattr(value, "toDict"):
        return dict(value.toDict())
    if hasattr(value, "items"):
        return dict(value.items())
    return {}


class JudgeOptions(BaseModel):
    """A judge's options: it scores whole predictions, so no ``fields``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pass_threshold: float = Field(default=1.0, ge=0.0, le=1.0)


def is_judge(spec: str) -> bool:
    return spec.strip().startswith(JUDGE_PREFIX)


def judge_options(options: Any) -> JudgeOptions:
    """A judge metric's options parsed; raises MetricOptionsError."""
    return _parse(JudgeOptions, options if options is not None else {})


def validate_metric(spec: str, options: Any) -> list[ErrorDict]:
    """Problems with a metric name and its options, as ``[{loc, msg, type}]``."""
    try:
        if is_judge(spec):
            judge_options(options)
            return []
        _resolve(spec, options)
    except UnknownMetric as exc:
        return [{"loc": ["metric"], "msg": str(exc), "type": "unknown_metric"}]
    except MetricOptionsError as exc:
        return exc.errors
    return []


def build_metric(spec: str, options: Any, output_fields: Sequence[str]) -> Metric:
    """The metric for a signature; raises UnknownMetric or MetricOptionsError."""
    name, field_score, parsed, extra = _resolve(spec, options)
    _, suffix_fields = split_name(spec)
    selected = parsed.fields or suffix_fields
    if selected:
        unknown = [f for f in selected if f not in output_fields]
        if unknown:
            raise MetricOptionsError(
                [
                    {
                        "loc": ["config", "metric_options", "fields"],
                        "msg": f"not output fields of the signature: {', '.join(unknown)}",
                        "type": "unknown_field",
                    }
                ]
            )
    chosen = tuple(selected or output_fields)
    if name not in BUILTIN:
        return Metric(name, chosen, parsed.pass_threshold, _whole(field_score, chosen, extra))

    def score_fields(gold: Mapping[str, Any], pred: Mapping[str, Any]) -> float:
        # Only fields the example labels count: a dataset may label a subset of outputs.
        labelled = [f for f in chosen if gold.get(f) is not None]
        if not labelled:
            return 0.0
        total = 0.0
        for field in labelled:
            if pred.get(field) is not None:
                total += field_score(gold[field], pred[field], **extra)
        return total / len(labelled)

    return Metric(name, chosen, parsed.pass_threshold, score_fields)


def _resolve(
    spec: str, options: Any
) -> tuple[str, Callable[..., float], MetricOptions, dict[str, Any]]:
    name, _ = split_name(spec)
    raw = options if options is not None else {}
    builtin = BUILTIN.get(name)
    if builtin is not None:
        parsed = _parse(builtin.options, raw)
        extra = parsed.model_dump(exclude=set(MetricOptions.model_fields))
        return name, builtin.field_score, parsed, extra
    plugin = _plugins().get(name)
    if plugin is None:
        raise UnknownMetric(name)
    return _resolve_plugin(name, plugin.load(), raw)


def _resolve_plugin(
    name: str, fn: Any, raw: Any
) -> tuple[str, Callable[..., float], MetricOptions, dict[str, Any]]:
    model = getattr(fn, "Options", None)
    base_keys = set(MetricOptions.model_fields)
    base = _parse(MetricOptions, {k: v for k, v in _dict(raw).items() if k in base_keys})
    rest = {k: v for k, v in _dict(raw).items() if k not in base_keys}
    if isinstance(model, type) and issubclass(model, BaseModel):
        extra = _parse(model, rest).model_dump()
    elif rest:
        raise MetricOptionsError(
            [
                {
                    "loc": ["config", "metric_options", key],
                    "msg": f"metric {name!r} takes no option {key!r}",
                    "type": "extra_forbidden",
                }
                for key in rest
            ]
        )
    else:
        extra = {}

    return name, fn, base, extra


def _whole(
    fn: Callable[..., float], chosen: tuple[str, ...], extra: dict[str, Any]
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], float]:
    """A plugin scores the whole example, seeing only the selected output fields."""

    def score(gold: Mapping[str, Any], pred: Mapping[str, Any]) -> float:
        picked_gold = {f: gold[f] for f in chosen if f in gold}
        picked_pred = {f: pred[f] for f in chosen if f in pred}
        return float(fn(picked_gold, picked_pred, **extra))

    return score


def _dict(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MetricOptionsError(
            [
                {
                    "loc": ["config", "metric_options"],
                    "msg": "metric_options must be an object",
                    "type": "dict_type",
                }
            ]
        )
    return raw


def _parse(model: type[M], raw: Any) -> M:
    try:
        return model.model_validate(_dict(raw))
    except ValidationError as exc:
        raise MetricOptionsError(
            [
                {"loc": ["config", "metric_options", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
        ) from exc
