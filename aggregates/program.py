"""The Program aggregate: a DSPy program's definition, its lifecycle and its versions.

A program keeps improving: it is optimized and evaluated again and again, each
optimization adding a version, and `production` (the deployed version) moves to any of
them. Versions are immutable and numbered from 1 (v1 is the unoptimized program); the
deployed version is an alias pointing at one of them, as MLflow's registry aliases do.

The program's status is the seed's coarse state and follows from its versions: draft
until a version serves (training once TrainProgram said runs are being prepared,
optimized once an optimized candidate waits), deployed from the first deploy on (a new
candidate waits beside the version serving, which does not make the program less
deployed), deprecated at the end. `TRANSITIONS` is the one table (action, from -> to);
`REJECTED` says why each missing pair is refused:

    action     allowed from -> status after             rejected (IllegalTransition)
    train      draft -> training                        training, optimized, deployed: it
                                                        has begun already (optimize it);
                                                        deprecated (loc status)
    optimize   draft, training, optimized -> optimized  deprecated (loc status)
               deployed -> deployed
    evaluate   any but deprecated (unchanged)           deprecated (loc status)
    update     any but deprecated (unchanged)           deprecated (loc status)
    deploy     draft, training, optimized, deployed     deprecated (loc status); the version
               -> deployed                              serving now (loc version); a version
                                                        that does not exist: NotFound;
                                                        gated, no version serving (loc
                                                        gate: app/gates.py)
    rollback   deployed -> deployed                     draft, training, optimized: nothing
                                                        has served (loc status); deprecated;
                                                        a version that never served, or the
                                                        one serving now (loc version)
    deprecate  optimized, deployed -> deprecated        draft, training: nothing to retire
                                                        (the seed's rule); deprecated
    alias      any but deprecated (unchanged)           deprecated (loc status); `production`
                                                        (loc alias: deploy or roll back);
                                                        the version it points at already
                                                        (loc version); a version, or on
                                                        removal an alias, that does not
                                                        exist: NotFound
    split      any but deprecated (unchanged)           deprecated (loc status); an alias not
                                                        set (loc alias); weights not summing
                                                        to 100, without the alias's version,
                                                        or as they are (loc weights); a
                                                        version that does not exist: NotFound;
                                                        gated, ending a split (loc gate:
                                                        app/splits.py)

Rollback returns to an earlier-served version: one `production` pointed at before (by a
deploy or a rollback) and does not point at now, whatever its number; `served_versions`
lists them in the order they first served. Deploy takes any existing version.
Optimizations and evaluations in flight are their own aggregates with their own status:
they do not change the program's (its events record only what happened to it).
Budgets (SetBudget) are allowed in any status but deprecated and keep the status.

Aliases are named pointers to versions (`staging`, `canary`, any `[a-z][a-z0-9-]{0,31}`),
set and removed by SetAlias and RemoveAlias with the actor and a reason. `production` is
one of them, and it IS the deployed version: only deploy and rollback move it (SetAlias
and RemoveAlias refuse it), so its lifecycle rules stay in one place. `aliases` holds
every pointer, `production` included while a version serves.

A traffic split (SetTrafficSplit, aggregates/traffic.py) shares the executions addressed
to an alias between versions by weight; `splits` holds them by alias, each with its arms
and its optional guard. Moving an alias (deploy, rollback, SetAlias, RemoveAlias) ends
its split: the weights were chosen against the version it pointed at. The guard takes a
failing candidate arm out (`SplitArmRemoved`, actor `dspyops`), never the control arm.
A gated split that did not apply is recorded (`TrafficSplitRefused`) and changes nothing.

This module is long because the event classes are declared here, next to the methods
that record them: they carry class versions and upcasts for events stored long ago, and
their topics (`dspyops.aggregates.program:Program.<Event>`) are stored with every event.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.errors import IllegalTransition, InvalidInput, NotFound
from dspyops.aggregates.execution import FEEDBACK_SCALE
from dspyops.aggregates.ids import program_uuid
from dspyops.aggregates.traffic import Arm, arm_for, bucket_of, checked_arms, describe, without_arm
from dspyops.events.fields import ALIAS_PATTERN

Status = str
DRAFT, TRAINING, OPTIMIZED, DEPLOYED, DEPRECATED = (
    "draft",
    "training",
    "optimized",
    "deployed",
    "deprecated",
)
STATUSES: tuple[Status, ...] = (DRAFT, TRAINING, OPTIMIZED, DEPLOYED, DEPRECATED)

# `module` of a program made of steps, and the prefix of a plugin program's module.
PIPELINE = "Pipeline"
PLUGIN_PREFIX = "plugin:"

LIVE = frozenset({DRAFT, TRAINING, OPTIMIZED, DEPLOYED})

# The alias deploy and rollback move: the deployed version.
PRODUCTION = "production"

# action -> {status it is allowed from: status it leads to}; a missing status is refused
# for the reason in REJECTED. "evaluate" records no program event: it is checked only.
TRANSITIONS: dict[str, dict[Status, Status]] = {
    "train": {DRAFT: TRAINING},
    "optimize": {DRAFT: OPTIMIZED, TRAINING: OPTIMIZED, OPTIMIZED: OPTIMIZED, DEPLOYED: DEPLOYED},
    "evaluate": {status: status for status in LIVE},
    "update": {status: status for status in LIVE},
    "deploy": {status: DEPLOYED for status in LIVE},
    "rollback": {DEPLOYED: DEPLOYED},
    "deprecate": {OPTIMIZED: DEPRECATED, DEPLOYED: DEPRECATED},
    "alias": {status: status for status in LIVE},
    "split": {status: status for status in LIVE},
}

# (action, status) -> why it is refused; (action, None) for every other refused status.
REJECTED: dict[tuple[str, Status | None], str] = {
    ("train", None): "training marks a draft's first runs; this program has begun: optimize it",
    ("rollback", None): "no version has served yet: deploy one",
    ("deprecate", None): "only an optimized or deployed program is deprecated (the seed's rule)",
}
DEPRECATED_REASON = "a deprecated program changes no more"


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
    # The dataset version the optimization that made it took its examples from; None for
    # other versions, and for versions made before runs recorded it.
    dataset_version: int | None
    baseline_score: float | None
    optimized_score: float | None
    # A plugin program's module as this version was made with it (name, distribution,
    # version, source hash), recorded in the version's event for the audit trail, where
    # a changed plugin shows. None for other programs.
    plugin: dict[str, Any] | None


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
        "dataset_version": None,
        "baseline_score": None,
        "optimized_score": None,
        "plugin": None,
    }
    version.update(rest)  # type: ignore[typeddict-item]
    return version


class Program(Aggregate):
    # Snapshots are versioned too: a snapshot taken before pipelines lacks their fields,
    # one taken before budgets lacks `budget`, one taken before redeploys lacks
    # `served_versions`, one taken before aliases lacks `aliases`, one taken before
    # traffic splits lacks `splits`, one taken before feedback scales lacks
    # `feedback_scale`, one taken before pinned runs lacks each version's `dataset_version`,
    # one taken before online evaluation lacks `online_evaluation`.
    class_version = 9

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.update(steps=None, outputs=None, options=None)
        for version in state.get("versions", []):
            version.setdefault("plugin", None)

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["budget"] = None

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        # Such a snapshot knows only the version serving then: versions that served before
        # it (left by a rollback) are not known, and a rollback to them is refused.
        deployed = state.get("deployed_version")
        state["served_versions"] = [] if deployed is None else [deployed]

    @staticmethod
    def upcast_v4_v5(state: dict[str, Any]) -> None:
        # No alias was ever set before aliases: only `production`, while one served.
        deployed = state.get("deployed_version")
        state["aliases"] = {} if deployed is None else {PRODUCTION: deployed}

    @staticmethod
    def upcast_v5_v6(state: dict[str, Any]) -> None:
        state["splits"] = {}

    @staticmethod
    def upcast_v6_v7(state: dict[str, Any]) -> None:
        state["feedback_scale"] = None

    @staticmethod
    def upcast_v7_v8(state: dict[str, Any]) -> None:
        for version in state.get("versions", []):
            version.setdefault("dataset_version", None)

    @staticmethod
    def upcast_v8_v9(state: dict[str, Any]) -> None:
        state["online_evaluation"] = None

    @staticmethod
    def create_id(program_id: str) -> Any:
        return program_uuid(program_id)

    # Events carry the facts they result in (`status`, new `version`), so readers copy
    # them instead of re-deriving the lifecycle. Version 1 of these events did not carry
    # them: each upcast fills what a v1 event implies, and None where only the
    # aggregate's state knew it (readers then fall back for those old events).

    class Registered(Aggregate.Created):
        program_id: str
        name: str
        signature: str
        module: str
        instructions: str | None
        description: str | None
        field_descriptions: dict[str, str]
        lm: str
        status: str
        version: int
        command_id: str
        correlation_id: str
        actor: str | None
        # A pipeline's steps and output bindings, a plugin's options and identity
        # (version 3; None in earlier events: a one-signature program).
        steps: list[dict[str, Any]] | None
        outputs: dict[str, str] | None
        options: dict[str, Any] | None
        plugin: dict[str, Any] | None
        # {"min", "max"} of feedback scores (version 4); None: the default 0..1, as for
        # every program registered before programs declared one.
        feedback_scale: dict[str, float] | None
        class_version = 4

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["status"] = DRAFT
            state["version"] = 1

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.update(steps=None, outputs=None, options=None, plugin=None)

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["feedback_scale"] = None

    class TrainingStarted(Aggregate.Event):
        status: str
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["status"] = TRAINING

    class Updated(Aggregate.Event):
        description: str | None
        instructions: str | None
        # The version new instructions created; None when none was (or, in a v1 event
        # with instructions, when it was not recorded: it was the latest + 1).
        version: int | None
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["version"] = None

    class Optimized(Aggregate.Event):
        optimization_id: str
        state: dict[str, Any]
        optimizer: str
        metric: str
        config: dict[str, Any]
        dataset_id: str
        baseline_score: float
        optimized_score: float
        # The version created; None in v1 events (it was the latest + 1).
        version: int | None
        status: str
        command_id: str
        correlation_id: str
        actor: str | None
        # A plugin program's module as the optimization ran it (version 3; else None).
        plugin: dict[str, Any] | None
        # The dataset version the optimization took its examples from (version 4; None
        # before, and for a run recorded before runs were pinned).
        dataset_version: int | None
        class_version = 4

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["version"] = None
            state["status"] = OPTIMIZED

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["plugin"] = None

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["dataset_version"] = None

    class Deployed(Aggregate.Event):
        version: int
        status: str
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["status"] = DEPLOYED

    class Deprecated(Aggregate.Event):
        status: str
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["status"] = DEPRECATED

    class BudgetSet(Aggregate.Event):
        """The program's execution budget (None: a limit that does not limit)."""

        usd_per_day: float | None
        executions_per_minute: int | None
        reason: str | None
        command_id: str
        correlation_id: str
        actor: str | None

    class OnlineEvaluationSet(Aggregate.Event):
        """A sample of the program's executions is judged by `judge` (a program id) at
        `alias` (None: its deployed, else latest, version); `judge` None: none is."""

        judge: str | None
        alias: str | None
        sample_percent: float | None
        reason: str | None
        command_id: str
        correlation_id: str
        actor: str | None

    class AliasSet(Aggregate.Event):
        """`alias` points at `version` now (at `previous_version` before, None: new)."""

        alias: str
        version: int
        previous_version: int | None
        reason: str | None
        command_id: str
        correlation_id: str
        actor: str | None

    class DeploymentRefused(Aggregate.Event):
        """A gated deploy of `version` did not apply (`code`, `message`); production
        stayed at `deployed_version`. `gate`: what the gate measured (events.results.
        GateReport as JSON: both scores and both evaluation runs)."""

        version: int
        deployed_version: int | None
        code: str
        message: str
        gate: dict[str, Any]
        command_id: str
        correlation_id: str
        actor: str | None

    class AliasRemoved(Aggregate.Event):
        """`alias`, which pointed at `version`, names no version any more."""

        alias: str
        version: int
        reason: str | None
        command_id: str
        correlation_id: str
        actor: str | None

    class TrafficSplitSet(Aggregate.Event):
        """The executions addressed to `alias` go to `arms` by weight now (an empty list:
        the split ended, the alias's own version takes them all)."""

        alias: str
        arms: list[Arm]
        previous_arms: list[Arm]
        guard: dict[str, Any] | None
        reason: str | None
        command_id: str
        correlation_id: str
        actor: str | None

    class SplitArmRemoved(Aggregate.Event):
        """The guard took `version` out of `alias`'s split: `failed` of its last `window`
        executions failed, above `max_error_rate`. `arms` is the split left."""

        alias: str
        version: int
        arms: list[Arm]
        failed: int
        window: int
        max_error_rate: float
        command_id: str
        correlation_id: str
        actor: str | None

    class TrafficSplitRefused(Aggregate.Event):
        """A gated split of `alias` into `arms` did not apply (`code`, `message`); the
        alias's split stayed `current_arms` (empty: none). `gates`: what the gate measured,
        one events.results.GateReport (as JSON) per candidate arm."""

        alias: str
        arms: list[Arm]
        current_arms: list[Arm]
        code: str
        message: str
        gates: list[dict[str, Any]]
        command_id: str
        correlation_id: str
        actor: str | None

    @event(Registered)
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
        # Always so for a new program; parameters so that the event records them.
        status: str = DRAFT,
        version: int = 1,
        steps: list[dict[str, Any]] | None = None,
        outputs: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        plugin: dict[str, Any] | None = None,
        feedback_scale: dict[str, float] | None = None,
    ) -> None:
        self.program_id = program_id
        # The range of feedback scores; None: 0..1 (see `scale`).
        self.feedback_scale = feedback_scale
        self.name = name
        self.signature = signature
        self.module = module
        self.instructions = instructions
        self.description = description
        self.field_descriptions = dict(field_descriptions)
        self.lm = lm
        self.status: Status = status
        # A pipeline (module "Pipeline"): its normalized steps and output bindings.
        self.steps = steps
        self.outputs = outputs
        # A plugin program (module "plugin:<name>"): its options.
        self.options = options
        self.versions: list[ProgramVersion] = [
            _version(version, "registered", instructions, plugin=plugin)
        ]
        self.deployed_version: int | None = None
        # Every version `production` has pointed at, in the order each first served.
        self.served_versions: list[int] = []
        # alias -> version: `production` (while one serves) and those SetAlias set.
        self.aliases: dict[str, int] = {}
        # {"usd_per_day", "executions_per_minute"} while a budget is set.
        self.budget: dict[str, Any] | None = None
        # alias -> {"arms": [Arm, ...], "guard": SplitGuard as JSON or None}.
        self.splits: dict[str, dict[str, Any]] = {}
        # {"judge", "alias", "sample_percent"} while executions are judged online.
        self.online_evaluation: dict[str, Any] | None = None

    # --- queries -------------------------------------------------------------------

    @property
    def scale(self) -> tuple[float, float]:
        """The range feedback scores lie in: the declared one, else 0..1."""
        if self.feedback_scale is None:
            return FEEDBACK_SCALE
        return self.feedback_scale["min"], self.feedback_scale["max"]

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

    def serving_version(
        self, requested: int | None = None, alias: str | None = None
    ) -> ProgramVersion:
        """The version an execution uses: the named one, else the one `alias` points at,
        else the deployed one, else (never deployed) the latest."""
        if requested is not None:
            return self.get_version(requested)
        if alias is not None:
            return self.get_version(self.aliased_version(alias))
        return self.get_version(self.deployed_version or self.latest_version)

    def route(
        self, requested: int | None, alias: str | None, routing_key: str
    ) -> tuple[ProgramVersion, dict[str, Any]]:
        """The version an execution uses, and why: `{"alias", "arm", "bucket", "reason"}`
        (`arm` and `bucket` only when a split chose it)."""
        if requested is not None:
            return self.get_version(requested), _route(None, f"version {requested} requested")
        name = alias if alias is not None else PRODUCTION
        if alias is None and PRODUCTION not in self.aliases:
            latest = self.latest_version
            return self.get_version(latest), _route(None, f"latest version {latest}: none serves")
        target = self.aliased_version(name)
        split = self.splits.get(name)
        if split is None:
            return self.get_version(target), _route(name, f"{name} points at version {target}")
        bucket = bucket_of(self.program_id, name, routing_key)
        chosen = arm_for(split["arms"], bucket)
        reason = f"{name} split {describe(split['arms'])}: routing key bucket {bucket} -> v{chosen}"
        return self.get_version(chosen), _route(name, reason, arm=chosen, bucket=bucket)

    def aliased_version(self, alias: str) -> int:
        """The version `alias` points at; NotFound (loc alias) for an alias not set."""
        if alias not in self.aliases:
            known = ", ".join(sorted(self.aliases)) or "none"
            hint = " (no version is deployed)" if alias == PRODUCTION else ""
            raise NotFound(
                f"program {self.program_id!r} has no alias {alias!r}{hint}; its aliases: {known}",
                loc=["alias"],
            )
        return self.aliases[alias]

    def can(self, action: str) -> bool:
        return self.status in TRANSITIONS[action]

    def next_status(self, action: str) -> Status:
        """The status `action` leads to (checked first): what its event records."""
        self.check(action)
        return TRANSITIONS[action][self.status]

    def check(self, action: str) -> None:
        """Refuse `action` in this status, with the reason from `REJECTED`."""
        allowed = TRANSITIONS[action]
        if self.status in allowed:
            return
        reason = (
            DEPRECATED_REASON
            if self.status == DEPRECATED
            else REJECTED.get((action, self.status)) or REJECTED[(action, None)]
        )
        raise IllegalTransition(
            f"cannot {action} program {self.program_id!r} in status {self.status!r}: "
            f"{reason}; {action} is allowed from {', '.join(sorted(allowed))}",
            loc=["status"],
        )

    # --- guarded actions: check everything, then record one event ----------------------

    def train(self, **meta: Any) -> None:
        self._training_started(status=self.next_status("train"), **meta)

    def update(self, description: str | None, instructions: str | None, **meta: Any) -> None:
        self.check("update")
        version = None if instructions is None else self.latest_version + 1
        self._updated(description=description, instructions=instructions, version=version, **meta)

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
        plugin: dict[str, Any] | None,
        dataset_version: int | None = None,
        **meta: Any,
    ) -> int:
        status = self.next_status("optimize")
        self._optimized(
            optimization_id=optimization_id,
            state=state,
            optimizer=optimizer,
            metric=metric,
            config=config,
            dataset_id=dataset_id,
            baseline_score=baseline_score,
            optimized_score=optimized_score,
            version=self.latest_version + 1,
            status=status,
            plugin=plugin,
            dataset_version=dataset_version,
            **meta,
        )
        return self.latest_version

    def deploy(self, version: int, **meta: Any) -> None:
        """Point `production` at any existing version but the one serving now."""
        self._deployed(version=version, status=self.check_deploy(version), **meta)

    def check_deploy(self, version: int) -> Status:
        """Refuse a deploy of `version` now, or say the status it would lead to (a gated
        deploy checks before its gate runs, and again when it applies)."""
        status = self.next_status("deploy")
        self.get_version(version)
        if version == self.deployed_version:
            raise IllegalTransition(
                f"version {version} of program {self.program_id!r} is serving already",
                loc=["version"],
            )
        return status

    def refuse_deployment(
        self, version: int, code: str, message: str, gate: dict[str, Any], **meta: Any
    ) -> None:
        """Record that a gated deploy of `version` did not apply, and why (`gate`: what it
        measured): production stays where it is, and the audit trail says so."""
        self.check("deploy")
        self.get_version(version)
        self._deployment_refused(
            version=version,
            deployed_version=self.deployed_version,
            code=code,
            message=message,
            gate=gate,
            **meta,
        )

    def rollback(self, version: int, **meta: Any) -> None:
        """Point `production` back at a version that served before (any number)."""
        self.check("rollback")
        self.get_version(version)
        assert self.deployed_version is not None
        if version == self.deployed_version:
            raise IllegalTransition(
                f"version {version} of program {self.program_id!r} is serving already",
                loc=["version"],
            )
        if version not in self.served_versions:
            served = ", ".join(str(v) for v in self.served_versions if v != self.deployed_version)
            raise IllegalTransition(
                f"rollback returns to a version that served before; version {version} of "
                f"program {self.program_id!r} never served (served before: "
                f"{served or 'none'}): deploy it instead",
                loc=["version"],
            )
        self._rolled_back(version=version, previous_version=self.deployed_version, **meta)

    def deprecate(self, **meta: Any) -> None:
        self._deprecated(status=self.next_status("deprecate"), **meta)

    def set_alias(self, alias: str, version: int, reason: str | None, **meta: Any) -> None:
        """Point `alias` (any but `production`) at an existing version."""
        self._check_alias(alias)
        self.get_version(version)
        previous = self.aliases.get(alias)
        if version == previous:
            raise IllegalTransition(
                f"alias {alias!r} of program {self.program_id!r} points at version "
                f"{version} already",
                loc=["version"],
            )
        self._alias_set(
            alias=alias, version=version, previous_version=previous, reason=reason, **meta
        )

    def remove_alias(self, alias: str, reason: str | None, **meta: Any) -> None:
        self._check_alias(alias)
        version = self.aliased_version(alias)
        self._alias_removed(alias=alias, version=version, reason=reason, **meta)

    def _check_alias(self, alias: str) -> None:
        self.check("alias")
        if re.fullmatch(ALIAS_PATTERN, alias) is None:
            raise InvalidInput(
                f"an alias matches {ALIAS_PATTERN} (lowercase letters, digits, '-'): {alias!r}",
                loc=["alias"],
            )
        if alias == PRODUCTION:
            raise IllegalTransition(
                f"{PRODUCTION!r} is the deployed version: move it with DeployProgram or "
                "RollbackProgram",
                loc=["alias"],
            )

    def set_split(
        self,
        alias: str,
        weights: dict[str, int],
        guard: dict[str, Any] | None,
        reason: str | None,
        **meta: Any,
    ) -> list[Arm]:
        """Split `alias`'s executions by `weights`; `{its own version: 100}` ends a split."""
        arms = self.check_split(alias, weights, guard)
        previous = self.splits.get(alias, {}).get("arms", [])
        ends = len(arms) == 1
        self._traffic_split_set(
            alias=alias,
            arms=[] if ends else arms,
            previous_arms=previous,
            guard=None if ends else guard,
            reason=reason,
            **meta,
        )
        return arms

    def check_split(
        self, alias: str, weights: dict[str, int], guard: dict[str, Any] | None
    ) -> list[Arm]:
        """Refuse this split of `alias` now, or say its arms (a gated split checks before
        its gate runs, and again when it applies)."""
        self.check("split")
        control = self.aliased_version(alias)
        arms = checked_arms(weights, self.latest_version, control)
        previous = self.splits.get(alias, {}).get("arms", [])
        if len(arms) == 1 and not previous:
            raise IllegalTransition(
                f"{alias!r} has no split: its version {control} takes all its executions",
                loc=["weights"],
            )
        if arms == previous and guard == self.splits[alias]["guard"]:
            raise IllegalTransition(f"{alias!r} is split {describe(arms)} already", loc=["weights"])
        return arms

    def refuse_split(
        self,
        alias: str,
        arms: list[Arm],
        code: str,
        message: str,
        gates: list[dict[str, Any]],
        **meta: Any,
    ) -> None:
        """Record that a gated split of `alias` into `arms` did not apply, and why (`gates`:
        what it measured): the alias's split stays as it is, and the audit trail says so."""
        self.check("split")
        self._traffic_split_refused(
            alias=alias,
            arms=arms,
            current_arms=self.splits.get(alias, {}).get("arms", []),
            code=code,
            message=message,
            gates=gates,
            **meta,
        )

    def remove_split_arm(
        self, alias: str, version: int, failed: int, window: int, **meta: Any
    ) -> list[Arm]:
        """The guard's move: take a failing candidate arm out of `alias`'s split."""
        self.check("split")
        split = self.splits.get(alias)
        control = self.aliases.get(alias)
        if split is None or control is None or version == control:
            raise IllegalTransition(
                f"version {version} is not a candidate arm of a split of {alias!r}",
                loc=["version"],
            )
        if all(arm["version"] != version for arm in split["arms"]):
            raise IllegalTransition(
                f"version {version} is not in {alias!r}'s split {describe(split['arms'])}",
                loc=["version"],
            )
        left = without_arm(split["arms"], version, control)
        self._split_arm_removed(
            alias=alias,
            version=version,
            arms=left,
            failed=failed,
            window=window,
            max_error_rate=split["guard"]["max_error_rate"],
            **meta,
        )
        return left

    def set_budget(
        self,
        usd_per_day: float | None,
        executions_per_minute: int | None,
        reason: str | None,
        **meta: Any,
    ) -> None:
        """Limits on the program's executions; both None removes the budget."""
        if self.status == DEPRECATED:
            raise IllegalTransition(
                f"program {self.program_id!r} is deprecated and runs no executions",
                loc=["program_id"],
            )
        self._budget_set(
            usd_per_day=usd_per_day,
            executions_per_minute=executions_per_minute,
            reason=reason,
            **meta,
        )

    def set_online_evaluation(
        self,
        judge: str | None,
        alias: str | None,
        sample_percent: float | None,
        reason: str | None,
        **meta: Any,
    ) -> None:
        """Judge a sample of the executions (the judge checked by the caller); `judge`
        None stops it."""
        if self.status == DEPRECATED:
            raise IllegalTransition(
                f"program {self.program_id!r} is deprecated and runs no executions",
                loc=["program_id"],
            )
        self._online_evaluation_set(
            judge=judge,
            alias=alias if judge is not None else None,
            sample_percent=sample_percent if judge is not None else None,
            reason=reason,
            **meta,
        )

    # --- events: the state change only; guards ran before ---------------------------

    @event(TrainingStarted)
    def _training_started(
        self, status: str, command_id: str, correlation_id: str, actor: str | None
    ) -> None:
        self.status = status

    @event(Updated)
    def _updated(
        self,
        description: str | None,
        instructions: str | None,
        version: int | None,
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
                    version or self.latest_version + 1,
                    "updated",
                    instructions,
                    state=latest["state"],
                    based_on=latest["number"],
                    plugin=latest.get("plugin"),
                )
            )

    @event(Optimized)
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
        version: int | None,
        status: str,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        plugin: dict[str, Any] | None = None,
        dataset_version: int | None = None,
    ) -> None:
        self.versions.append(
            _version(
                version or self.latest_version + 1,
                "optimized",
                self.instructions,
                state=state,
                based_on=self.latest_version,
                optimization_id=optimization_id,
                optimizer=optimizer,
                metric=metric,
                config=config,
                dataset_id=dataset_id,
                dataset_version=dataset_version,
                baseline_score=baseline_score,
                optimized_score=optimized_score,
                plugin=plugin,
            )
        )
        self.status = status

    @event(Deployed)
    def _deployed(
        self, version: int, status: str, command_id: str, correlation_id: str, actor: str | None
    ) -> None:
        self._serve(version)
        self.status = status

    @event("RolledBack")
    def _rolled_back(
        self,
        version: int,
        previous_version: int,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self._serve(version)

    def _serve(self, version: int) -> None:
        self.deployed_version = version
        self.aliases[PRODUCTION] = version
        self.splits.pop(PRODUCTION, None)
        if version not in self.served_versions:
            self.served_versions.append(version)

    @event(Deprecated)
    def _deprecated(
        self, status: str, command_id: str, correlation_id: str, actor: str | None
    ) -> None:
        self.status = status

    @event(OnlineEvaluationSet)
    def _online_evaluation_set(
        self,
        judge: str | None,
        alias: str | None,
        sample_percent: float | None,
        reason: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.online_evaluation = (
            None
            if judge is None
            else {"judge": judge, "alias": alias, "sample_percent": sample_percent}
        )

    @event(BudgetSet)
    def _budget_set(
        self,
        usd_per_day: float | None,
        executions_per_minute: int | None,
        reason: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        limits = {"usd_per_day": usd_per_day, "executions_per_minute": executions_per_minute}
        self.budget = limits if any(v is not None for v in limits.values()) else None

    @event(AliasSet)
    def _alias_set(
        self,
        alias: str,
        version: int,
        previous_version: int | None,
        reason: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.aliases[alias] = version
        self.splits.pop(alias, None)

    @event(AliasRemoved)
    def _alias_removed(
        self,
        alias: str,
        version: int,
        reason: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        del self.aliases[alias]
        self.splits.pop(alias, None)

    @event(TrafficSplitSet)
    def _traffic_split_set(
        self,
        alias: str,
        arms: list[Arm],
        previous_arms: list[Arm],
        guard: dict[str, Any] | None,
        reason: str | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        if arms:
            self.splits[alias] = {"arms": arms, "guard": guard}
        else:
            self.splits.pop(alias, None)

    @event(SplitArmRemoved)
    def _split_arm_removed(
        self,
        alias: str,
        version: int,
        arms: list[Arm],
        failed: int,
        window: int,
        max_error_rate: float,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        if len(arms) > 1:
            self.splits[alias]["arms"] = arms
        else:  # only the control arm is left: no split any more
            self.splits.pop(alias, None)

    @event(TrafficSplitRefused)
    def _traffic_split_refused(
        self,
        alias: str,
        arms: list[Arm],
        current_arms: list[Arm],
        code: str,
        message: str,
        gates: list[dict[str, Any]],
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        pass  # a record for the audit trail: nothing about the program changed

    @event(DeploymentRefused)
    def _deployment_refused(
        self,
        version: int,
        deployed_version: int | None,
        code: str,
        message: str,
        gate: dict[str, Any],
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        pass  # a record for the audit trail: nothing about the program changed


def _route(
    alias: str | None, reason: str, *, arm: int | None = None, bucket: int | None = None
) -> dict[str, Any]:
    return {"alias": alias, "arm": arm, "bucket": bucket, "reason": reason}
