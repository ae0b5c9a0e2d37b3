"""Result payloads: the ``data`` of every message on the results topic, one frozen model each.

Each command ends in exactly one *terminal* result; long jobs also send progress results
before it. Scores are always on a 0..1 scale (``score_scale`` says so on the wire).

This module is long because it is the wire contract of every result in one place: one
small model per result type (the JSON Schemas and docs/contract.md's table follow it),
and splitting them by subject would scatter `RESULT_TYPES` over several modules.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

ProgramStatus = Literal["draft", "training", "optimized", "deployed", "deprecated"]
ScoreScale = Literal["0-1"]


class Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    terminal: ClassVar[bool] = True


class ErrorItem(BaseModel):
    """One machine-readable problem, in pydantic's shape so clients parse one format."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    loc: list[str | int] = Field(default_factory=list)
    msg: str
    type: str
    # Figures behind the problem, as pydantic's `ctx` (e.g. `budget_exceeded`: the limit,
    # what was spent and what is allowed); left out of the JSON when there are none.
    ctx: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _without_empty_ctx(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("ctx") is None:
            data.pop("ctx", None)
        return data


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    code: str
    message: str
    details: list[ErrorItem] = Field(default_factory=list)


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RunSpend(BaseModel):
    """What an optimization or evaluation run spent so far: LM responses, the tokens
    they were billed for, and their US dollars (null: the LM's price is unknown). Null
    throughout when nothing was counted (a run that failed before it started, or one
    recorded before runs counted)."""

    lm_calls: int | None = None
    usage: Usage | None = None
    cost_usd: float | None = None


class LMProfileUsed(BaseModel):
    """An LM profile a run called: its name, the model string it names (what LiteLLM was
    asked for) and the models the provider said answered (LiteLLM's response `model`,
    e.g. a dated snapshot), sorted; empty when no call answered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str
    model: str
    offline: bool
    response_models: list[str]


class Provenance(BaseModel):
    """What a run ran with, recorded by the worker that ran it: the dspy and dspyops
    versions (null: not installed as a distribution), the optimizer's config as used
    (every default filled in; null for an evaluation) and its seed (null: none; see
    docs/contract.md), and every LM profile it called."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dspy_version: str | None
    dspyops_version: str | None
    optimizer_config: dict[str, Any] | None = None
    seed: int | None = None
    lm_profiles: list[LMProfileUsed]


class RunRecord(BaseModel):
    """What a completed run took and ran with: the dataset version its examples came from
    (null for runs requested before runs were pinned) and its provenance (null for runs
    that completed before it was recorded)."""

    dataset_version: int | None = None
    provenance: Provenance | None = None


class CommandRejected(Result):
    """Validation or lifecycle error: nothing was changed."""

    command_type: str
    errors: list[ErrorItem]


class ProgramResult(Result):
    program_id: str
    status: ProgramStatus
    latest_version: int
    deployed_version: int | None = None


class ProgramRegistered(ProgramResult):
    name: str
    signature: str
    module: str
    lm: str


class ProgramUpdated(ProgramResult):
    new_version: int | None = None


class ProgramTrainingStarted(ProgramResult):
    pass


class GateReport(BaseModel):
    """What a promotion gate measured: both versions scored with `metric` on `split` of
    `dataset_id`, each as an evaluation run (`*_evaluation_id`, on the read API with its
    per-example results); a score is null when its run did not complete."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dataset_id: str
    metric: str
    split: str
    min_delta: float
    candidate_version: int
    current_version: int
    candidate_score: float | None
    current_score: float | None
    candidate_evaluation_id: str
    current_evaluation_id: str
    score_scale: ScoreScale = "0-1"


class ProgramDeployed(ProgramResult):
    version: int
    # A gated deploy: what the gate measured (candidate >= current + min_delta held).
    gate: GateReport | None = None


class DeploymentRefused(ProgramResult):
    """A gated deploy that did not apply: production is untouched (`deployed_version`).
    `error.code`: `gate_not_passed` (the candidate scored too low), `gate_evaluation_failed`
    (a run failed: nothing to compare), `production_changed` (production moved while
    the gate ran: the comparison no longer holds) or `cancelled`."""

    version: int
    error: ErrorInfo
    gate: GateReport


class ProgramRolledBack(ProgramResult):
    version: int
    previous_version: int | None


class ProgramDeprecated(ProgramResult):
    pass


class ProgramBudgetSet(ProgramResult):
    """The program's execution budget after the change; a null limit does not limit."""

    usd_per_day: float | None = None
    executions_per_minute: int | None = None


class OnlineEvaluationSet(ProgramResult):
    """The program's online evaluation after the change; `judge` null: none."""

    judge: str | None = None
    sample_percent: float | None = None


class ProgramAliasSet(ProgramResult):
    alias: str
    version: int
    previous_version: int | None = None


class ProgramAliasRemoved(ProgramResult):
    alias: str
    # The version it pointed at.
    version: int


class SplitArm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int
    percent: int


class ProgramTrafficSplitSet(ProgramResult):
    """`alias`'s split after the change (empty: it ended, its own version serves all)."""

    alias: str
    arms: list[SplitArm]
    previous_arms: list[SplitArm] = Field(default_factory=list)
    # A gated split: what the gate measured, one report per candidate arm (each passed).
    gates: list[GateReport] = Field(default_factory=list)


class GateCancelled(Result):
    """A gated command ended by CancelGate before its gate did: nothing was applied.
    The outcome of both the CancelGate and the gated command (`command_id`,
    `command_type`); `evaluation_ids`: the gate's runs, cancelled unless they had ended."""

    program_id: str
    command_id: str
    command_type: str
    evaluation_ids: list[str]
    reason: str


class TrafficSplitRefused(ProgramResult):
    """A gated split that did not apply: `alias`'s split is untouched (`current_arms`,
    empty: none). `arms`: the split asked for. `error.code`: `gate_not_passed` (a
    candidate scored too low), `gate_evaluation_failed` (a run failed: nothing to
    compare), `alias_moved` (the alias points at another version than the one the
    candidates were compared with) or `split_changed` (the alias's split changed while the
    gate ran). `gates`: one report per candidate arm."""

    alias: str
    arms: list[SplitArm]
    current_arms: list[SplitArm]
    error: ErrorInfo
    gates: list[GateReport]


class ProgramSplitArmRemoved(ProgramResult):
    """The guard took `version` out of `alias`'s split (actor `dspyops`): `failed` of its
    last `window` executions failed, above `max_error_rate`; `arms` is what is left."""

    alias: str
    version: int
    arms: list[SplitArm]
    failed: int
    window: int
    max_error_rate: float


class Route(BaseModel):
    """Why an execution ran the version it ran: `alias` it was addressed to (null: a
    version was named, or none serves and the latest ran), and, when a traffic split
    chose, the `arm` (its version) and the routing key's `bucket` (0..9999)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alias: str | None = None
    arm: int | None = None
    bucket: int | None = None
    reason: str


class DatasetResult(Result):
    dataset_id: str
    name: str
    size: int
    train_size: int
    dev_size: int


class DatasetRegistered(DatasetResult):
    pass


class ExamplesAppended(DatasetResult):
    appended: int


class ExecutionsPromoted(DatasetResult):
    """`appended`: examples added; `skipped`: executions already in the dataset (or named
    twice), not added again."""

    appended: int
    skipped: int


class StepSummary(BaseModel):
    """One step of an execution (a predictor, for a one-signature program): the whole
    trace is on the read API (`GET /executions/{id}`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    step: str
    type: str
    latency_ms: float | None
    total_tokens: int = 0
    # The exception's class when this step raised.
    error: str | None = None


class CorpusResult(Result):
    """A corpus after the change: `version` is the corpus version it made, `size` its
    documents then."""

    corpus_id: str
    name: str
    version: int
    size: int


class CorpusRegistered(CorpusResult):
    pass


class DocumentsAppended(CorpusResult):
    appended: int


class DocumentsRemoved(CorpusResult):
    removed: int


class ExecutionSucceeded(Result):
    execution_id: str
    program_id: str
    version: int
    outputs: dict[str, Any]
    latency_ms: float
    usage: Usage
    model: str
    # True when the labelled offline profile answered: its output is not a model's answer.
    offline: bool = False
    steps: list[StepSummary] = Field(default_factory=list)
    # US dollars, from the LM profile's prices or LiteLLM's cost map; null when the
    # model's price is unknown (never 0 for unknown); 0 for the offline profile.
    cost_usd: float | None = None
    # How the version was chosen (null for executions recorded before routes were).
    route: Route | None = None


class ExecutionFailed(Result):
    execution_id: str
    program_id: str
    version: int | None
    error: ErrorInfo
    latency_ms: float | None = None
    steps: list[StepSummary] = Field(default_factory=list)
    # The step that raised, when the program got that far.
    failed_step: str | None = None
    # The tokens billed before it failed, and what they cost (as ExecutionSucceeded's).
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    # As ExecutionSucceeded's; null when it failed before a version was chosen.
    route: Route | None = None


class FeedbackRecorded(Result):
    """`number`: its place among the execution's feedback; `version`: what that ran."""

    execution_id: str
    program_id: str
    version: int
    number: int
    score: float | None = None
    label: str | None = None


class OptimizationProgress(Result, RunSpend):
    terminal: ClassVar[bool] = False
    optimization_id: str
    program_id: str
    step: int
    total: int
    best_score: float | None = None
    score_scale: ScoreScale = "0-1"
    message: str = ""


class OptimizationCompleted(Result, RunSpend, RunRecord):
    optimization_id: str
    program_id: str
    version: int
    optimizer: str
    metric: str
    dataset_id: str
    baseline_score: float
    optimized_score: float
    score_scale: ScoreScale = "0-1"


class OptimizationFailed(Result, RunSpend):
    optimization_id: str
    program_id: str
    error: ErrorInfo
    # A run stopped over its budget (`budget_exceeded`) keeps its best candidate as a
    # new version when that scored better than the baseline on the dev split: that
    # version and both scores (0-1); null when nothing was kept.
    kept_version: int | None = None
    baseline_score: float | None = None
    optimized_score: float | None = None


class OptimizationCancelled(Result):
    optimization_id: str
    program_id: str
    reason: str = "cancelled on request"


class EvaluationCompleted(Result, RunSpend, RunRecord):
    evaluation_id: str
    program_id: str
    version: int
    dataset_id: str
    metric: str
    score: float
    examples: int
    score_scale: ScoreScale = "0-1"
    # Examples that could not be scored (an LM call, the program or the metric failed),
    # each counted 0 in `score`; an answer that does not parse is scored, not counted.
    errored: int = 0


class EvaluationFailed(Result, RunSpend):
    evaluation_id: str
    program_id: str
    error: ErrorInfo


RESULT_TYPES: dict[str, type[Result]] = {
    cls.__name__: cls
    for cls in (
        CommandRejected,
        ProgramRegistered,
        ProgramUpdated,
        ProgramTrainingStarted,
        ProgramDeployed,
        DeploymentRefused,
        ProgramRolledBack,
        ProgramDeprecated,
        ProgramBudgetSet,
        OnlineEvaluationSet,
        ProgramAliasSet,
        ProgramAliasRemoved,
        ProgramTrafficSplitSet,
        TrafficSplitRefused,
        ProgramSplitArmRemoved,
        DatasetRegistered,
        ExamplesAppended,
        ExecutionsPromoted,
        CorpusRegistered,
        DocumentsAppended,
        DocumentsRemoved,
        ExecutionSucceeded,
        ExecutionFailed,
        FeedbackRecorded,
        OptimizationProgress,
        OptimizationCompleted,
        OptimizationFailed,
        OptimizationCancelled,
        GateCancelled,
        EvaluationCompleted,
        EvaluationFailed,
    )
}
