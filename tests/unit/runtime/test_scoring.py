"""Metrics by name: built-ins, field selection, options validation, entry-point plugins."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from pydantic import BaseModel

from dspyops.runtime import scoring
from dspyops.runtime.field_scores import contains, exact_match, f1, numeric_close
from dspyops.runtime.scoring import (
    MetricOptionsError,
    UnknownMetric,
    build_metric,
    validate_metric,
)

OUTPUTS = ["answer", "confidence"]


def test_exact_match_normalises_case_and_whitespace_and_compares_numbers_as_numbers() -> None:
    assert exact_match(" Paris ", "paris") == 1.0
    assert exact_match("Paris", "paris", case_sensitive=True) == 0.0
    assert exact_match(0.5, "0.50") == 1.0
    assert exact_match("0.5", "0.50") == 0.0  # a string label is compared as text


def test_f1_is_token_overlap() -> None:
    assert f1("the Eiffel Tower", "Eiffel Tower") == 1.0
    # precision 1, recall 1/4 (articles are dropped, "in" is not)
    assert f1("Eiffel Tower in Paris", "Tower") == pytest.approx(0.4)
    assert f1("Paris", "London") == 0.0
    assert f1("", "") == 1.0


def test_contains_and_numeric_close() -> None:
    assert contains("paris", "It is Paris, France.") == 1.0
    assert contains("rome", "It is Paris.") == 0.0
    assert numeric_close(10, "10.4", tolerance=0.5) == 1.0
    assert numeric_close(10, 11, tolerance=0.05, relative=True) == 0.0
    assert numeric_close(10, "ten") == 0.0


def test_a_metric_averages_the_fields_the_example_labels() -> None:
    metric = build_metric("exact_match", {}, OUTPUTS)
    gold = dspy.Example(question="q", answer="Paris", confidence=0.9).with_inputs("question")
    half = dspy.Prediction(answer="Paris", confidence=0.1)
    assert metric(gold, half) == 0.5
    only_answer = dspy.Example(question="q", answer="Paris").with_inputs("question")
    assert metric(only_answer, half) == 1.0


def test_fields_come_from_options_or_the_name_suffix() -> None:
    gold = {"answer": "Paris", "confidence": 0.9}
    pred = {"answer": "Paris", "confidence": 0.1}
    assert build_metric("exact_match", {"fields": ["answer"]}, OUTPUTS).score(gold, pred) == 1.0
    assert build_metric("exact_match:confidence", {}, OUTPUTS).score(gold, pred) == 0.0
    with pytest.raises(MetricOptionsError, match="not output fields"):
        build_metric("exact_match:nope", {}, OUTPUTS)


def test_with_a_trace_the_metric_answers_pass_or_fail() -> None:
    metric = build_metric("f1", {"pass_threshold": 0.5}, ["answer"])
    gold = {"answer": "Eiffel Tower in Paris"}
    assert metric(gold, {"answer": "Tower"}) == pytest.approx(0.4)
    assert metric(gold, {"answer": "Tower"}, trace=[]) is False
    assert metric(gold, {"answer": "Eiffel Tower Paris"}, trace=[]) is True


def test_unknown_metrics_and_options_are_reported_with_locations() -> None:
    assert validate_metric("bleu", {})[0]["type"] == "unknown_metric"
    errors = validate_metric("numeric_close", {"tolerance": "wide", "unit": "cm"})
    assert sorted(tuple(e["loc"]) for e in errors) == [
        ("config", "metric_options", "tolerance"),
        ("config", "metric_options", "unit"),
    ]
    assert validate_metric("f1", {"case_sensitive": True})[0]["type"] == "extra_forbidden"
    with pytest.raises(UnknownMetric):
        build_metric("bleu", {}, OUTPUTS)


class _EntryPoint:
    def __init__(self, name: str, obj: Any) -> None:
        self.name = name
        self._obj = obj

    def load(self) -> Any:
        return self._obj


def test_entry_point_metrics_get_the_selected_fields_and_their_own_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Options(BaseModel):
        model_config = {"extra": "forbid"}
        bonus: float = 0.0

    def length_ratio(gold: dict[str, Any], pred: dict[str, Any], *, bonus: float) -> float:
        return len(str(pred["answer"])) / len(str(gold["answer"])) + bonus

    length_ratio.Options = Options  # type: ignore[attr-defined]
    plugins = {"length_ratio": _EntryPoint("length_ratio", length_ratio)}
    monkeypatch.setattr(scoring, "_plugins", lambda: plugins)
    metric = build_metric("length_ratio", {"bonus": 0.25, "fields": ["answer"]}, OUTPUTS)
    assert metric.score({"answer": "abcd"}, {"answer": "ab", "confidence": 1}) == 0.75
    # Scores are clamped to 0..1 whatever a plugin returns.
    assert metric.score({"answer": "a"}, {"answer": "abcdef"}) == 1.0
    assert validate_metric("length_ratio", {"nope": 1})[0]["type"] == "extra_forbidden"
    assert "length_ratio" in scoring.metric_names()
