"""What the appliers read from events whose classes mypy cannot see.

eventsourcing makes an event class from each `@event("Name")` decorator when the
aggregate class is created, so `Dataset.Registered` and the like exist only at run time.
Each protocol here names the fields one handler reads; a unit test checks every one of
them against the run-time class the dispatcher maps to that handler, so they cannot drift.
Program's events are explicit classes (but `RolledBack`) and are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

# A handler takes the event and its position (notification id); the dispatcher passes
# each event to the handler mapped to its class.
Handler = Callable[[Any, int], None]
Handlers = dict[type, Handler]


def event_class(aggregate: type, name: str) -> type:
    """The event class eventsourcing made for `@event(name)` on `aggregate`."""
    found: type = getattr(aggregate, name)
    return found


class Recorded(Protocol):
    """Every event the read side projects: identity, time and the asking command."""

    @property
    def originator_id(self) -> UUID: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def command_id(self) -> str: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def actor(self) -> str | None: ...


class ProgramRolledBack(Recorded, Protocol):
    version: int


class DatasetRegistered(Recorded, Protocol):
    dataset_id: str
    name: str
    dev_fraction: float
    examples: list[dict[str, Any]]
    splits: list[str]


class ExamplesAppended(Recorded, Protocol):
    examples: list[dict[str, Any]]
    splits: list[str]
    # Version 2; None for examples sent as such (and in version 1 events).
    source_execution_ids: list[str] | None


class CorpusRegistered(Recorded, Protocol):
    corpus_id: str
    name: str
    version: int
    size: int


class DocumentsChanged(Recorded, Protocol):
    """Corpus.DocumentsAppended and Corpus.DocumentsRemoved: the version and size after."""

    version: int
    size: int


class ExecutionRequested(Recorded, Protocol):
    execution_id: str
    program_id: str
    version: int
    inputs: dict[str, Any]
    route: dict[str, Any] | None


class ExecutionSucceeded(Recorded, Protocol):
    outputs: dict[str, Any]
    latency_ms: float
    usage: dict[str, int] | None
    offline: bool
    trace: dict[str, Any] | None
    cost_usd: float | None


class ExecutionFailed(Recorded, Protocol):
    code: str
    message: str
    details: list[dict[str, Any]]
    latency_ms: float | None
    trace: dict[str, Any] | None
    failed_step: str | None
    usage: dict[str, int] | None
    cost_usd: float | None


class FeedbackRecorded(Recorded, Protocol):
    execution_id: str
    number: int
    program_id: str
    version: int
    score: float | None
    label: str | None
    comment: str | None
    corrected_outputs: dict[str, Any] | None


class RunRequested(Recorded, Protocol):
    program_id: str
    dataset_id: str
    metric: str
    # The dataset version the run took its examples from; None: requested before runs
    # recorded it.
    dataset_version: int | None


class OptimizationRequested(RunRequested, Protocol):
    optimization_id: str
    optimizer: str
    config: dict[str, Any]
    base_version: int


class EvaluationRequested(RunRequested, Protocol):
    evaluation_id: str
    version: int


class RunProgressed(Recorded, Protocol):
    step: int
    total: int
    best_score: float | None


class OptimizationCandidateScored(Recorded, Protocol):
    seed: int
    score: float


class RunFailed(Recorded, Protocol):
    code: str
    message: str
    kept_version: int | None


class RunCancelled(Recorded, Protocol):
    reason: str


class OptimizationCompleted(Recorded, Protocol):
    version: int
    baseline_score: float
    optimized_score: float
    # events.results.Provenance as JSON; None: completed before runs recorded it.
    provenance: dict[str, Any] | None


class EvaluationCompleted(Recorded, Protocol):
    score: float
    per_example: list[dict[str, Any]]
    # Examples whose LM call failed; None in version 1 events (not counted then).
    errored: int | None
    provenance: dict[str, Any] | None
