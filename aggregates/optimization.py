"""The Optimization aggregate: one optimizer run over a dataset for one program.

A run that searches candidates one at a time (``runtime.random_search``) records each
scored candidate as a checkpoint (``CandidateScored``): a worker that starts the run
again after one died skips the candidates its run already holds.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.ids import optimization_uuid
from dspyops.aggregates.run import COMPLETED, RUNNING, Run


class Optimization(Run):
    @staticmethod
    def create_id(optimization_id: str) -> Any:
        return optimization_uuid(optimization_id)

    class Requested(Aggregate.Created):
        optimization_id: str
        program_id: str
        dataset_id: str
        base_version: int
        optimizer: str
        metric: str
        config: dict[str, Any]
        command_id: str
        correlation_id: str
        actor: str | None
        # Digest of the asking command (None in version 1 events: unknown).
        payload_digest: str | None
        # What the run may spend (events.commands.RunBudget as JSON); None: no limit, as
        # for every version 2 event.
        budget: dict[str, Any] | None
        # The dataset version the examples were taken from (aggregates/dataset.py): a
        # resumed run takes that version's examples again. None in version 3 events:
        # recorded before runs were pinned, they take the dataset's current examples.
        dataset_version: int | None
        # A judge program as the metric ("judge:<id>[@alias]"): the judge version pinned
        # when the run was planned, {"program_id", "version", "alias"}; None for every
        # other metric, and in version 4 events (recorded before judges were).
        judge: dict[str, Any] | None
        class_version = 5

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["payload_digest"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["budget"] = None

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["dataset_version"] = None

        @staticmethod
        def upcast_v4_v5(state: dict[str, Any]) -> None:
            state["judge"] = None

    @event(Requested)
    def __init__(
        self,
        optimization_id: str,
        program_id: str,
        dataset_id: str,
        base_version: int,
        optimizer: str,
        metric: str,
        config: dict[str, Any],
        command_id: str,
        correlation_id: str,
        actor: str | None,
        payload_digest: str | None = None,
        budget: dict[str, Any] | None = None,
        dataset_version: int | None = None,
        judge: dict[str, Any] | None = None,
    ) -> None:
        self._init_run(
            optimization_id, program_id, command_id, correlation_id, actor, payload_digest
        )
        self.optimization_id = optimization_id
        self.dataset_id = dataset_id
        self.base_version = base_version
        self.optimizer = optimizer
        self.metric = metric
        self.config = dict(config)
        self.budget = dict(budget) if budget is not None else None
        self.dataset_version = dataset_version
        self.judge = dict(judge) if judge is not None else None
        self.version_created: int | None = None
        self.baseline_score: float | None = None
        self.optimized_score: float | None = None
        self.provenance: dict[str, Any] | None = None
        # Checkpoints: each candidate scored so far, by its seed (CandidateScored).
        self.candidates: dict[int, dict[str, Any]] = {}

    class Completed(Aggregate.Event):
        version: int
        baseline_score: float
        optimized_score: float
        # What the run ran with (events.results.Provenance as JSON), told by the worker
        # that ran it; None in version 1 events: recorded before provenance was.
        provenance: dict[str, Any] | None
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["provenance"] = None

    def complete(
        self,
        version: int,
        baseline_score: float,
        optimized_score: float,
        provenance: dict[str, Any] | None = None,
        **meta: Any,
    ) -> None:
        self._check(frozenset({RUNNING}), "complete")
        self._completed(
            version=version,
            baseline_score=baseline_score,
            optimized_score=optimized_score,
            provenance=provenance,
            **meta,
        )

    @event(Completed)
    def _completed(
        self,
        version: int,
        baseline_score: float,
        optimized_score: float,
        command_id: str,
        correlation_id: str,
        actor: str | None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.status = COMPLETED
        self.version_created = version
        self.baseline_score = baseline_score
        self.optimized_score = optimized_score
        self.provenance = provenance

    class CandidateScored(Aggregate.Event):
        """A checkpoint: one candidate of a search scored on the dev split.

        Everything a run started again needs to skip the candidate: its seed (the
        optimizer's candidate number), its score (0..1), its program state
        (``dump_state()`` as JSON), the baseline's score, and what the run had spent by
        then over all its starts (``lm_calls``, ``prompt_tokens``, ``completion_tokens``).
        """

        seed: int
        score: float
        state: dict[str, Any]
        baseline_score: float
        spent: dict[str, int]
        command_id: str
        correlation_id: str
        actor: str | None

    def checkpoint(
        self,
        seed: int,
        score: float,
        state: dict[str, Any],
        baseline_score: float,
        spent: dict[str, int],
        **meta: Any,
    ) -> bool:
        """Record a scored candidate; False (nothing recorded) when it already was."""
        self._check(frozenset({RUNNING}), "checkpoint")
        if seed in self.candidates:
            return False
        self._candidate_scored(
            seed=seed,
            score=score,
            state=state,
            baseline_score=baseline_score,
            spent=spent,
            **meta,
        )
        return True

    @event(CandidateScored)
    def _candidate_scored(
        self,
        seed: int,
        score: float,
        state: dict[str, Any],
        baseline_score: float,
        spent: dict[str, int],
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.candidates[seed] = {
            "seed": seed,
            "score": score,
            "state": state,
            "baseline_score": baseline_score,
            "spent": dict(spent),
        }
