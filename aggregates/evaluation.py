"""The Evaluation aggregate: one program version scored on a dataset's dev split."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.ids import evaluation_uuid
from dspyops.aggregates.run import COMPLETED, RUNNING, Run


class Evaluation(Run):
    @staticmethod
    def create_id(evaluation_id: str) -> Any:
        return evaluation_uuid(evaluation_id)

    class Requested(Aggregate.Created):
        evaluation_id: str
        program_id: str
        version: int
        dataset_id: str
        metric: str
        command_id: str
        correlation_id: str
        actor: str | None
        # Digest of the asking command (None in version 1 events: unknown).
        payload_digest: str | None
        # What the run may spend (events.commands.RunBudget as JSON); None: no limit, as
        # for every version 2 event.
        budget: dict[str, Any] | None
        # The dataset split scored: "dev", "train" or "all"; None (EvaluateProgram, and
        # every version 3 event): the dev split, all examples when it has none.
        split: str | None
        # A promotion gate's run: {"command_type": the gated command, "role":
        # "candidate", "candidate-v<N>" (a split's candidate arm) or "current"}, and for a
        # SetTrafficSplit, "arms": the alias's split when the gate began; None for an
        # EvaluateProgram run (and version 3).
        gate: dict[str, Any] | None
        # The dataset version the examples were taken from (aggregates/dataset.py): a
        # resumed run takes that version's examples again. None in version 4 events:
        # recorded before runs were pinned, they take the dataset's current examples.
        dataset_version: int | None
        # A judge program as the metric ("judge:<id>[@alias]"): the judge version pinned
        # when the run was planned, {"program_id", "version", "alias"}; None for every
        # other metric, and in version 5 events (recorded before judges were).
        judge: dict[str, Any] | None
        class_version = 6

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["payload_digest"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["budget"] = None

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["split"] = None
            state["gate"] = None

        @staticmethod
        def upcast_v4_v5(state: dict[str, Any]) -> None:
            state["dataset_version"] = None

        @staticmethod
        def upcast_v5_v6(state: dict[str, Any]) -> None:
            state["judge"] = None

    @event(Requested)
    def __init__(
        self,
        evaluation_id: str,
        program_id: str,
        version: int,
        dataset_id: str,
        metric: str,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        payload_digest: str | None = None,
        budget: dict[str, Any] | None = None,
        split: str | None = None,
        gate: dict[str, Any] | None = None,
        dataset_version: int | None = None,
        judge: dict[str, Any] | None = None,
    ) -> None:
        self._init_run(evaluation_id, program_id, command_id, correlation_id, actor, payload_digest)
        self.evaluation_id = evaluation_id
        self.version_used = version
        self.dataset_id = dataset_id
        self.metric = metric
        self.budget = dict(budget) if budget is not None else None
        self.split = split
        self.gate = dict(gate) if gate is not None else None
        self.dataset_version = dataset_version
        self.judge = dict(judge) if judge is not None else None
        self.score: float | None = None
        self.per_example: list[dict[str, Any]] = []
        self.errored: int | None = None
        self.provenance: dict[str, Any] | None = None

    @property
    def asking_command(self) -> str:
        """The type of the command this run ends for: EvaluateProgram, or a gated one."""
        return self.gate["command_type"] if self.gate is not None else "EvaluateProgram"

    class Completed(Aggregate.Event):
        score: float
        per_example: list[dict[str, Any]]
        # Examples that could not be scored (they count 0 in `score`; their per-example
        # entries carry `error`). None in v1 events: they were not told apart then.
        errored: int | None
        # What the run ran with (events.results.Provenance as JSON), told by the worker
        # that ran it; None in version 2 events: recorded before provenance was.
        provenance: dict[str, Any] | None
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["errored"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["provenance"] = None

    def complete(
        self,
        score: float,
        per_example: list[dict[str, Any]],
        errored: int,
        provenance: dict[str, Any] | None = None,
        **meta: Any,
    ) -> None:
        self._check(frozenset({RUNNING}), "complete")
        self._completed(
            score=score,
            per_example=per_example,
            errored=errored,
            provenance=provenance,
            **meta,
        )

    @event(Completed)
    def _completed(
        self,
        score: float,
        per_example: list[dict[str, Any]],
        errored: int | None,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.status = COMPLETED
        self.score = score
        self.per_example = list(per_example)
        self.errored = errored
        self.provenance = provenance
