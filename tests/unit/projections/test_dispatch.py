"""Every event class of the projected aggregates reaches a typed handler: a new event
cannot be silently ignored, and the fields a handler reads exist on the class it gets."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, cast

import pytest
from eventsourcing.domain import DomainEvent

from dspyops.aggregates.corpus import Corpus
from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.handled import HandledCommand
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.program import Program
from dspyops.aggregates.run import Run
from dspyops.projections.appliers import BatchApplier

PROJECTED = (Program, Dataset, Corpus, Execution, Run, Optimization, Evaluation)
# eventsourcing's own bases on every aggregate, never stored as themselves.
GENERIC = {"Event", "Created", "Snapshot"}


def event_classes(aggregate: type) -> list[type]:
    found = []
    for name in dir(aggregate):
        value = getattr(aggregate, name)
        if isinstance(value, type) and issubclass(value, DomainEvent) and name not in GENERIC:
            found.append(value)
    return found


ALL_EVENTS = [cls for aggregate in PROJECTED for cls in event_classes(aggregate)]


@pytest.fixture(scope="module")
def applier() -> BatchApplier:
    # Building the handler table touches no database.
    return BatchApplier(cast(Any, None), "unused")


def test_the_aggregates_define_the_events_expected() -> None:
    # Guards the enumeration itself: were it to find nothing, the test below would pass.
    assert len(ALL_EVENTS) >= 28
    assert {cls.__qualname__ for cls in event_classes(Program)} == {
        f"Program.{name}"
        for name in (
            "Registered",
            "BudgetSet",
            "OnlineEvaluationSet",
            "AliasSet",
            "AliasRemoved",
            "TrainingStarted",
            "Updated",
            "Optimized",
            "Deployed",
            "RolledBack",
            "Deprecated",
            "TrafficSplitSet",
            "SplitArmRemoved",
            "DeploymentRefused",
            "TrafficSplitRefused",
        )
    }


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=lambda c: c.__qualname__)
def test_every_event_class_has_a_handler(applier: BatchApplier, event_class: type) -> None:
    assert applier.handlers(event_class), f"{event_class.__qualname__} is not projected"


@pytest.mark.parametrize("name", ["Started", "Progressed", "Failed", "Cancelled"])
def test_run_events_reach_the_handler_defined_once_on_run(applier: BatchApplier, name: str) -> None:
    shared = applier.handlers(getattr(Run, name))
    assert len(shared) == 1
    assert applier.handlers(getattr(Optimization, name)) == shared
    assert applier.handlers(getattr(Evaluation, name)) == shared


@pytest.mark.parametrize(
    "name", ["Deployed", "RolledBack", "AliasSet", "AliasRemoved", "Deprecated"]
)
def test_serving_changes_reach_the_program_row_first_then_the_serving_history(
    applier: BatchApplier, name: str
) -> None:
    program, serving = applier.handlers(getattr(Program, name))
    assert type(getattr(program, "__self__", None)).__name__ == "ProgramsApplier"
    assert type(getattr(serving, "__self__", None)).__name__ == "ServingApplier"


def test_other_program_events_feed_the_program_row_only(applier: BatchApplier) -> None:
    assert len(applier.handlers(Program.Updated)) == 1


def test_command_bookkeeping_has_no_read_model(applier: BatchApplier) -> None:
    assert applier.handlers(HandledCommand.Handled) == []


def _members(protocol: type) -> set[str]:
    names: set[str] = set()
    for cls in protocol.__mro__:
        if getattr(cls, "_is_protocol", False) and cls is not typing.Protocol:
            names |= set(getattr(cls, "__annotations__", {}))
            names |= {n for n, v in vars(cls).items() if isinstance(v, property)}
    return names


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=lambda c: c.__qualname__)
def test_the_fields_a_handler_reads_exist_on_its_event(
    applier: BatchApplier, event_class: type
) -> None:
    handlers = applier.handlers(event_class)
    assert handlers
    for handler in handlers:
        expected = typing.get_type_hints(handler)["e"]
        if getattr(expected, "_is_protocol", False):
            fields = {field.name for field in dataclasses.fields(event_class)}
            assert _members(expected) <= fields, f"{expected.__name__} reads fields not on it"
            assert _members(expected), expected
        else:
            assert issubclass(event_class, expected)
