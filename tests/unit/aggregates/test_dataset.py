"""Dataset: deterministic split that appends never move, size limits, signature fit."""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates import dataset as dataset_module
from dspyops.aggregates.dataset import Dataset, split_of
from dspyops.aggregates.errors import InvalidInput
from dspyops.signatures import compile_signature

META: dict[str, Any] = {"command_id": "c", "correlation_id": "c", "actor": None}
SIGNATURE = "question: str, context: str -> answer: str, confidence: float[0, 1]"


def examples(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"question": f"q{i}", "context": "ctx", "answer": f"a{i}"} for i in range(start, stop)]


def register(items: list[dict[str, Any]], dev_fraction: float = 0.3) -> Dataset:
    return Dataset.register(
        dataset_id="d", name="D", examples=items, dev_fraction=dev_fraction, **META
    )


def test_split_is_deterministic_and_near_the_fraction() -> None:
    dataset = register(examples(0, 1000))
    again = register(examples(0, 1000))
    assert dataset.splits == again.splits
    assert 230 < dataset.dev_size < 370
    assert dataset.train_size + dataset.dev_size == 1000


def test_appending_never_moves_existing_examples() -> None:
    dataset = register(examples(0, 100))
    before = list(dataset.splits)
    dataset.append(examples(100, 300), **META)
    assert dataset.splits[:100] == before
    assert dataset.size == 300
    whole = register(examples(0, 300))
    assert dataset.splits == whole.splits


def test_split_ignores_key_order() -> None:
    assert split_of({"a": 1, "b": 2}, 0.5) == split_of({"b": 2, "a": 1}, 0.5)


def test_split_is_recorded_in_the_event() -> None:
    dataset = register(examples(0, 10))
    dataset.append(examples(10, 12), **META)
    registered, appended = dataset.collect_events()
    assert registered.splits == dataset.splits[:10]  # type: ignore[attr-defined]
    assert appended.splits == dataset.splits[10:]  # type: ignore[attr-defined]


def test_zero_dev_fraction_puts_everything_in_train() -> None:
    assert register(examples(0, 50), dev_fraction=0.0).dev_size == 0


def test_an_oversized_example_is_named_by_index() -> None:
    items = examples(0, 3)
    items[1]["context"] = "x" * (dataset_module.MAX_EXAMPLE_BYTES + 1)
    with pytest.raises(InvalidInput) as info:
        register(items)
    (error,) = info.value.errors
    assert error["loc"] == ["examples", 1]
    assert error["type"] == "too_large"
    assert "per example" in error["msg"]


def test_total_size_limit_is_checked_on_append(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_module, "MAX_EXAMPLES_TOTAL", 10)
    dataset = register(examples(0, 8))
    with pytest.raises(InvalidInput) as info:
        dataset.append(examples(8, 11), **META)
    assert "at most 10 examples (8 stored, 3 sent)" in info.value.errors[0]["msg"]
    assert dataset.size == 8
    assert len(dataset.pending_events) == 1


def test_batch_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_module, "MAX_EXAMPLES_PER_MESSAGE", 2)
    monkeypatch.setattr(dataset_module, "MAX_BATCH_BYTES", 100)
    with pytest.raises(InvalidInput) as info:
        register(examples(0, 5))
    messages = " | ".join(error["msg"] for error in info.value.errors)
    assert "at most 2 per message" in messages
    assert "at most 100 per message" in messages


def test_empty_examples_and_bad_fraction_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        register([{}])
    with pytest.raises(InvalidInput):
        register(examples(0, 2), dev_fraction=1.0)
    with pytest.raises(InvalidInput):
        register(examples(0, 2)).append([], **META)


def test_fitting_examples_have_no_errors() -> None:
    compiled = compile_signature(SIGNATURE)
    items = [{**ex, "confidence": 0.5} for ex in examples(0, 5)]
    assert register(items).validate_against(compiled) == []


def test_validation_names_the_example_and_field() -> None:
    compiled = compile_signature(SIGNATURE)
    items: list[dict[str, Any]] = [
        {"question": "q", "context": "c", "answer": "a", "confidence": 0.5},
        {"question": "q", "answer": "a", "confidence": 0.5},
        {"question": "q", "context": "c", "answer": "a", "confidence": "high"},
    ]
    errors = register(items).validate_against(compiled)
    locs = {tuple(error["loc"]): error["type"] for error in errors}
    assert locs[("examples", 1, "context")] == "missing"
    assert ("examples", 2, "confidence") in locs
    assert all(error["loc"][1] != 0 for error in errors)


def test_label_fields_choose_which_outputs_an_example_needs() -> None:
    compiled = compile_signature(SIGNATURE)
    dataset = register(examples(0, 3))  # no confidence
    missing = dataset.validate_against(compiled)
    assert {tuple(e["loc"][2:]) for e in missing} == {("confidence",)}
    assert dataset.validate_against(compiled, label_fields=["answer"]) == []
    assert dataset.validate_against(compiled, label_fields=["confidence"]) != []


def test_an_empty_dataset_does_not_fit() -> None:
    compiled = compile_signature(SIGNATURE)
    assert register([]).validate_against(compiled)[0]["type"] == "empty"
