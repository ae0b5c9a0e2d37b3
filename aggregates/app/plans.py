"""What a worker needs to run a program, an optimization, an evaluation or a gate.

A plan is everything read from the aggregates at planning time, so the worker builds the
DSPy module and calls the LM without touching the event store again.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dspyops.aggregates.program import Program, ProgramVersion
from dspyops.signatures import CompiledSignature, compile_signature


class Plan(BaseModel):
    """What a long-running command's handler decides: the work the worker then does."""

    model_config = ConfigDict(frozen=True)

    program_id: str
    version: int
    signature: str
    module: str
    instructions: str | None
    field_descriptions: dict[str, str]
    # DSPy's saved state of the version (`dump_state()`), None when never optimized.
    state: dict[str, Any] | None
    lm: str
    # A pipeline's normalized steps and output bindings (module "Pipeline"), a plugin's
    # options and identity (module "plugin:<name>"); None for one-signature programs.
    steps: list[dict[str, Any]] | None = None
    outputs: dict[str, str] | None = None
    options: dict[str, Any] | None = None
    plugin: dict[str, Any] | None = None
    # The corpora the program's steps search, at the version current when planned
    # (recorded with the execution: what it searched).
    corpora: dict[str, int] = Field(default_factory=dict)

    def compiled(self) -> CompiledSignature:
        """The version's compiled signature (cached by `compile_signature`)."""
        return compile_signature(
            self.signature,
            instructions=self.instructions,
            descriptions=self.field_descriptions or None,
        )


class JudgePlan(Plan):
    """A judge program as a run's metric (aggregates.app.judges): its pinned version,
    how its inputs are filled and how its score is read."""

    # The alias the metric named (None: the deployed or latest version was taken).
    alias: str | None = None
    # Judge input -> [source, field]: source "output" (the prediction's), "input" (the
    # example's) or "label" (the example's labelled output).
    bindings: dict[str, list[str]]
    # The score's declared range, normalised to 0..1.
    score_low: float
    score_high: float
    # The output GEPA reads as feedback; None when the judge has no `rationale: str`.
    rationale: str | None = None


class ExecutionPlan(Plan):
    execution_id: str
    inputs: dict[str, Any]
    # True when the request was already stored (on its own) when planned.
    requested: bool = False
    # True when the program has a budget: the execution's cost settles its reservation.
    budgeted: bool = False
    # How the version was chosen (events.results.Route as JSON); None when the request
    # was stored before routes were.
    route: dict[str, Any] | None = None
    # The guard of the split that chose a candidate arm, with the split's arms (what
    # split_guard.ArmWatch counts it under); None otherwise.
    guard: dict[str, Any] | None = None
    # The judge of the program's online evaluation when it picked this execution
    # (SetOnlineEvaluation); None otherwise.
    judge: JudgePlan | None = None


class OptimizationPlan(Plan):
    """`version` is the version the optimizer starts from."""

    optimization_id: str
    dataset_id: str
    # The dataset version `trainset` and `devset` were taken from (the run's recorded one).
    dataset_version: int
    trainset: list[dict[str, Any]]
    devset: list[dict[str, Any]]
    optimizer: str
    metric: str
    config: dict[str, Any]
    # events.commands.RunBudget as JSON; None: no limit.
    budget: dict[str, Any] | None = None
    # True when the run was already recorded (a redelivered command after a crash).
    resumed: bool = False
    # Times a worker started this run before (progress step 0 recorded).
    starts: int = 0
    # The judge program when the metric is "judge:<program_id>[@alias]".
    judge: JudgePlan | None = None
    # A resumed run's checkpoints (Optimization.CandidateScored: seed, score, state,
    # baseline_score, spent), in the order they were recorded; empty for a new run.
    checkpoints: list[dict[str, Any]] = Field(default_factory=list)


class EvaluationPlan(Plan):
    evaluation_id: str
    dataset_id: str
    # The dataset version `devset` was taken from (the run's recorded one).
    dataset_version: int
    devset: list[dict[str, Any]]
    metric: str
    budget: dict[str, Any] | None = None
    resumed: bool = False
    # The judge program when the metric is "judge:<program_id>[@alias]".
    judge: JudgePlan | None = None


class GatePlan(Plan):
    """A gated command's work (a DeployProgram or SetTrafficSplit with a gate): the
    gate's evaluation runs still open, to run before `handlers.finish_gate` applies or
    refuses the change. `version` (and the program fields) is the first candidate's."""

    # The gated command, as sent (validated): what applying it takes.
    command_type: str
    command: dict[str, Any]
    # events.commands.PromotionGate as JSON.
    gate: dict[str, Any]
    # The version the candidates are compared with (when the gate began): production's
    # for a deploy, the alias's own for a split.
    current_version: int
    # One run per candidate (a deploy has one; a split, one per candidate arm).
    candidate_evaluation_ids: list[str]
    current_evaluation_id: str
    # The runs to score: both, or (resumed after a crash) those that had not ended.
    runs: list[EvaluationPlan]
    resumed: bool = False


def plan_fields(program: Program, version: ProgramVersion) -> dict[str, Any]:
    """What every plan copies from the program and the version it runs."""
    return {
        "program_id": program.program_id,
        "version": version["number"],
        "signature": program.signature,
        "module": program.module,
        "instructions": version["instructions"],
        "field_descriptions": dict(program.field_descriptions),
        "state": version["state"],
        "lm": program.lm,
        "steps": program.steps,
        "outputs": program.outputs,
        "options": program.options,
        "plugin": version.get("plugin"),
    }
