"""The Program aggregate: a DSPy program's definition, its lifecycle and its versions.

Lifecycle (the seed's state machine, exactly):
    train      draft              -> training
    optimize   draft, training    -> optimized
    deploy     optimized          -> deployed
    deprecate  optimized, deployed -> deprecated
Two actions outside the seed keep the status unchanged:
    update     any but deprecated (instructions make a new version)
    rollback   deployed: the deployed alias moves to an earlier existing version

Versions are immutable and numbered from 1 (v1 is the unoptimized program). The deployed
version is an alias pointing at one of them, as MLflow's registry aliases do.
"""

from __future__ import annotations

from typing import Any, TypedDict

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.errors import IllegalTransition, NotFound
from dspyops.aggregates.ids import program_uuid

Status = str
DRAFT, TRAINING, OPTIMIZED, DEPLOYED, DEPRECATED = (
    "draft",
    "training",
    "optimized",
    "deployed",
    "deprecated",
)
STATUSES: tuple[Status, ...] = (DRAFT, TRAINING, OPTIMIZED, DEPLOYED, DEPRECATED)

# action -> (statuses it is allowed from, status it leads to; None keeps the status)
TRANSITIONS: dict[str, tuple[frozenset[Status], Status | None]] = {
    "train": (frozenset({DRAFT}), TRAINING),
    "optimize": (frozenset({DRAFT, TRAINING}), OPTIMIZED),
    "deploy": (frozenset({OPTIMIZED}), DEPLOYED),
    "deprecate": (frozenset({OPTIMIZED, DEPLOYED}), DEPRECATED),
    "update": (frozenset({DRAFT, TRAINING, OPTIMIZED, DEPLOYED}), None),
    "rollback": (frozenset({DEPLOYED}), None),
}


class ProgramVersion(TypedDict):
    number: int
    # How it came to be: "registered", "updated" or "optimized".
    source: str
    instructions: str | None
    # DSPy's `dump_state()` (JSON); None for a version never optimized.
    state: dict[str, Any] | None
    based_on: int | None
    optimization_id: str | None
    optimizer: str | None
    metric: str | None
    config: dict[str, Any] | None
    dataset_id: str | None
    baseline_score: float | None
    optimized_score: float | None


def _version(number: int, source: str, instructions: str | None, **rest: Any) -> ProgramVersion:
    version: ProgramVersion = {
        "number": number,
        "source": source,
        "instructions": instructions,
        "state": None,
        "based_on": None,
        "optimization_id": None,
        "optimizer": None,
        "metric": None,
        "config": None,
        "dataset_id": None,
        "baseline_score": None,
        "optimized_score": None,
    }
    version.update(rest)  # type: ignore[typeddict-item]
    return version


class Program(Aggregate):
    @staticmethod
    def create_id(program_id: str) -> Any:
        return program_uuid(program_id)

    @event("Registered")
    def __init__(
        self,
        program_id: str,
        name: str,
        signature: str,
        module: str,
        instructions: str | None,
        description: str | None,
        field_descriptions: dict[str, str],
        lm: str,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.program_id = program_id
        self.name = name
        self.signature = signature
        self.module = module
        self.instructions = instructions
        self.description = description
        self.field_descriptions = dict(field_descriptions)
        self.lm = lm
        self.status: Status = DRAFT
        self.versions: list[ProgramVersion] = [_version(1, "registered", instructions)]
        self.deployed_version: int | None = None

    # --- queries -------------------------------------------------------------------

    @property
    def latest_version(self) -> int:
        return self.versions[-1]["number"]

    def get_version(self, number: int) -> ProgramVersion:
        if not 1 <= number <= len(self.versions):
            raise NotFound(
                f"program {self.program_id!r} has no version {number} "
                f"(versions 1..{self.latest_version})",
                loc=["version"],
            )
        return self.versions[number - 1]

    def serving_version(self, requested: int | None = None) -> ProgramVersion:
        """The version an execution uses: the named one, else the deployed, else the latest."""
        if requested is not None:
            return self.get_version(requested)
        return self.get_version(self.deployed_version or self.latest_version)

    def can(self, action: str) -> bool:
        return self.status in TRANSITIONS[action][0]

    def check(self, action: str) -> None:
        allowed, _ = TRANSITIONS[action]
        if self.status not in allowed:
            raise IllegalTransition(
                f"cannot {action} program {self.program_id!r} in status {self.status!r}; "
                f"{action} is allowed from {', '.join(sorted(allowed))}",
                loc=["status"],
            )

    # --- guarded actions: check everything, then record one event ----------------------

    def train(self, **meta: Any) -> None:
        self.check("train")
        self._training_started(**meta)

    def update(self, description: str | None, instructions: str | None, **meta: Any) -> None:
        self.check("update")
        self._updated(description=description, instructions=instructions, **meta)

    def add_optimized_version(
        self,
        *,
        optimization_id: str,
        state: dict[str, Any],
        optimizer: str,
        metric: str,
        config: dict[str, Any],
        dataset_id: str,
        baseline_score: float,
        optimized_score: float,
        **meta: Any,
    ) -> int:
        self.check("optimize")
        self._optimized(
            optimization_id=optimization_id,
            state=state,
            optimizer=optimizer,
            metric=metric,
            config=config,
            dataset_id=dataset_id,
            baseline_score=baseline_score,
            optimized_score=optimized_score,
            **meta,
        )
        return self.latest_version

    def deploy(self, version: int, **meta: Any) -> None:
        self.check("deploy")
        self.get_version(version)
        self._deployed(version=version, **meta)

    def rollback(self, version: int, **meta: Any) -> None:
        self.check("rollback")
        self.get_version(version)
        assert self.deployed_version is not None
        if version >= self.deployed_version:
            raise IllegalTransition(
                f"rollback needs a version earlier than the deployed version "
                f"{self.deployed_version}, got {version}",
                loc=["version"],
            )
        self._rolled_back(version=version, previous_version=self.deployed_version, **meta)

    def deprecate(self, **meta: Any) -> None:
        self.check("deprecate")
        self._deprecated(**meta)

    # --- events: the state change only; guards ran before ---------------------------

    @event("TrainingStarted")
    def _training_started(self, command_id: str, correlation_id: str, actor: str | None) -> None:
        self.status = TRAINING

    @event("Updated")
    def _updated(
        self,
        description: str | None,
        instructions: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        if description is not None:
            self.description = description
        if instructions is not None:
            # New instructions on top of the latest version's learned state (its demos).
            latest = self.versions[-1]
            self.instructions = instructions
            self.versions.append(
                _version(
                    self.latest_version + 1,
                    "updated",
                    instructions,
                    state=latest["state"],
                    based_on=latest["number"],
                )
            )

    @event("Optimized")
    def _optimized(
        self,
        optimization_id: str,
        state: dict[str, Any],
        optimizer: str,
        metric: str,
        config: dict[str, Any],
        dataset_id: str,
        baseline_score: float,
        optimized_score: float,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.versions.append(
            _version(
                self.latest_version + 1,
                "optimized",
                self.instructions,
                state=state,
                based_on=self.latest_version,
                optimization_id=optimization_id,
                optimizer=optimizer,
                metric=metric,
                config=config,
                dataset_id=dataset_id,
                baseline_score=baseline_score,
                optimized_score=optimized_score,
            )
        )
        self.status = OPTIMIZED

    @event("Deployed")
    def _deployed(
        self, version: int, command_id: str, correlation_id: str, actor: str | None
    ) -> None:
        self.deployed_version = version
        self.status = DEPLOYED

    @event("RolledBack")
    def _rolled_back(
        self,
        version: int,
        previous_version: int,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.deployed_version = version

    @event("Deprecated")
    def _deprecated(self, command_id: str, correlation_id: str, actor: str | None) -> None:
        self.status = DEPRECATED
