"""Command payloads: the ``data`` of every command envelope, one frozen model each.

These are the fields a producer in any language sends. Unknown fields are rejected so a
typo (``progam_id``) is a clear ``CommandRejected`` instead of a silent default, and
every field is validated strictly, as its JSON Schema says: no ``true`` for a number,
no ``"1"`` for an integer, no ``"0.5"`` for a float (an integer is a valid float).

This module is long because it is the wire contract of every command in one place: one
small model per command type, with the nested models they share (budgets, the promotion
gate), and `COMMAND_TYPES` and the topic groups built from them all.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dspyops.events.fields import MAX_SIGNATURE_CHARS, MAX_TEXT_CHARS, AliasName, Id
from dspyops.events.steps import MAX_STEPS, Reference, Step

Name = Annotated[str, Field(min_length=1, max_length=200)]
# Bounded so a version always fits a PostgreSQL integer.
Version = Annotated[int, Field(ge=1, le=2_147_483_647)]
ProfileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]

# A single-signature program's module kind, or `plugin:<name>`: a dspy.Module class the
# operator installed (entry point group `dspyops.modules`, docs/plugins.md).
ModuleKind = Annotated[
    str, Field(pattern=r"^(Predict|ChainOfThought|plugin:[A-Za-z][A-Za-z0-9_.-]{0,63})$")
]

MAX_EXAMPLES_PER_MESSAGE = 10_000
MAX_FEEDBACK_COMMENT_CHARS = 10_000


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class FeedbackScale(BaseModel):
    """The range feedback scores on a program's executions lie in, both ends included
    (RecordFeedback outside it is refused): 0..1 when a program declares none."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    min: float = Field(ge=-1e9, le=1e9, allow_inf_nan=False)
    max: float = Field(ge=-1e9, le=1e9, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> FeedbackScale:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self


class RegisterProgram(Command):
    """A program: one signature run by `module`, a pipeline of `steps`, or a plugin module.

    `signature` is the program's inputs and outputs; a plugin declares its own (give
    none, or the same). With `steps`, `outputs` binds each program output to a step's
    output (default: the last step with an output of that name).
    """

    program_id: Id | None = None
    name: Name
    signature: Annotated[str, Field(min_length=1, max_length=MAX_SIGNATURE_CHARS)] | None = None
    module: ModuleKind = "Predict"
    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)] | None = None
    outputs: dict[str, Reference] | None = None
    # A plugin module's options, validated by the plugin's own Options model.
    options: dict[str, Any] | None = None
    instructions: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None
    description: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None
    field_descriptions: dict[str, Annotated[str, Field(max_length=2_000)]] = Field(
        default_factory=dict
    )
    lm: ProfileName = "default"
    # The range of the feedback scores on its executions (default 0..1), e.g. 1..5 stars.
    feedback_scale: FeedbackScale | None = None


class UpdateProgram(Command):
    """Changes description and/or instructions; instructions make a new version."""

    program_id: Id
    description: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None
    instructions: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> UpdateProgram:
        if self.description is None and self.instructions is None:
            raise ValueError("give description, instructions or both")
        return self


class TrainProgram(Command):
    program_id: Id


# The dataset examples a gate scores: the recorded dev split, the train split, or all.
GateSplit = Literal["dev", "train", "all"]


class PromotionGate(BaseModel):
    """What a version must show before it serves: scored with `metric` on `split` of
    `dataset_id` (as two evaluation runs), the candidate's score must be at least the
    current production version's plus `min_delta` (scores are 0..1; a negative delta
    tolerates a small loss). Shared by the commands that move production."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    dataset_id: Id
    metric: str = "exact_match"
    min_delta: float = Field(default=0.0, ge=-1.0, le=1.0, allow_inf_nan=False)
    split: GateSplit = "dev"


class DeployProgram(Command):
    """Points `production` at `version`; with a `gate`, only once the version has scored
    well enough against the one serving (a long-running command: see PromotionGate)."""

    program_id: Id
    version: Version
    gate: PromotionGate | None = None


class RollbackProgram(Command):
    program_id: Id
    version: Version


class DeprecateProgram(Command):
    program_id: Id


class ProgramBudget(BaseModel):
    """What a program's executions may spend: US dollars per UTC day (at its LM profile's
    prices) and executions per minute (any 60 seconds). A limit left out (or null) does
    not limit. An execution over either ends as `CommandRejected` (`budget_exceeded`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd_per_day: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    executions_per_minute: int | None = Field(default=None, ge=1, le=10_000_000)


class SetBudget(Command):
    """Sets (or, with both limits left out, removes) a program's execution budget."""

    program_id: Id
    usd_per_day: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    executions_per_minute: int | None = Field(default=None, ge=1, le=10_000_000)
    reason: Annotated[str, Field(max_length=2_000)] | None = None


Reason = Annotated[str, Field(max_length=2_000)]
# A judge program, optionally by alias: "grader", "grader@production".
JudgeRef = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}(@[a-z][a-z0-9-]{0,31})?$")
]


class SetOnlineEvaluation(Command):
    """Scores `sample_percent` of the program's executions with a judge program (chosen
    by the execution id, deterministically), as feedback with actor `judge:<judge>`;
    `judge` null stops it."""

    program_id: Id
    judge: JudgeRef | None = None
    sample_percent: float = Field(default=10.0, gt=0, le=100, allow_inf_nan=False)
    reason: Reason | None = None


class SetAlias(Command):
    """Points `alias` at an existing version; `production` moves by deploy and rollback."""

    program_id: Id
    alias: AliasName
    version: Version
    reason: Reason | None = None


class RemoveAlias(Command):
    program_id: Id
    alias: AliasName
    reason: Reason | None = None


# A version number as a JSON object key (JSON keys are strings).
VersionKey = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$")]
Percent = Annotated[int, Field(ge=1, le=100)]


class SplitGuard(BaseModel):
    """Takes a candidate arm out of its split when, over its last `window` executions,
    more than `max_error_rate` of them failed (the arm's weight goes to the alias's own
    version). Counted by each worker over the executions it ran."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    max_error_rate: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
    window: Annotated[int, Field(ge=5, le=10_000)] = 50


class SetTrafficSplit(Command):
    """Splits the executions addressed to `alias` between versions, by weight.

    `weights` maps version numbers to whole percents summing to 100, and includes the
    version the alias points at (the control arm). Each execution goes to one version by
    a stable hash of its routing key, so one key keeps one version while the split
    holds. `{<the alias's version>: 100}` ends the split; moving the alias (deploy,
    rollback, SetAlias, RemoveAlias) ends it too.

    With a `gate`, the split applies only once every candidate arm (each version but the
    alias's own) has scored at least the alias's version's score plus `min_delta` (a
    long-running command: see PromotionGate); ending a split takes no gate.
    """

    program_id: Id
    alias: AliasName = "production"
    weights: Annotated[dict[VersionKey, Percent], Field(min_length=1, max_length=10)]
    guard: SplitGuard | None = None
    gate: PromotionGate | None = None
    reason: Reason | None = None


Example = dict[str, Any]


class RegisterDataset(Command):
    dataset_id: Id | None = None
    name: Name
    examples: Annotated[list[Example], Field(max_length=MAX_EXAMPLES_PER_MESSAGE)] = Field(
        default_factory=list
    )
    # Share of examples held out for evaluation; the split is deterministic per example.
    dev_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2


class AppendExamples(Command):
    dataset_id: Id
    examples: Annotated[list[Example], Field(min_length=1, max_length=MAX_EXAMPLES_PER_MESSAGE)]


class PromoteExecutions(Command):
    """Examples from production: each execution's inputs and its outputs (the corrected
    outputs of its latest feedback that gave some), appended to an existing dataset.

    The executions are named by id; a filter (program, version, score, time) is applied by
    the client over the read API and sent as the ids it found (docs/contract.md).
    """

    dataset_id: Id
    execution_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_EXAMPLES_PER_MESSAGE)]


class ExecuteProgram(Command):
    program_id: Id
    inputs: dict[str, Any]
    # Give at most one: a version, or the alias of one; neither runs `production`, or the
    # latest version of a program never deployed.
    version: Version | None = None
    alias: AliasName | None = None
    # Generated from the envelope id if absent, so a redelivered command maps to one run.
    execution_id: Id | None = None
    # What a traffic split hashes to pick the version (a user or session id, so one user
    # keeps one version while the split holds); default: the execution id.
    routing_key: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class RunBudget(BaseModel):
    """What one optimization or evaluation run may spend: LM calls (responses) and US
    dollars (at the LM profile's prices); a limit left out (or null) does not limit. A
    run that reaches one stops and fails with `budget_exceeded`; calls already in flight
    finish, so it may pass the budget by as many calls as the run makes at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_lm_calls: int | None = Field(default=None, ge=1, le=100_000_000)
    max_usd: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)


class OptimizeProgram(Command):
    program_id: Id
    dataset_id: Id
    optimizer: str = "BootstrapFewShot"
    metric: str = "exact_match"
    config: dict[str, Any] = Field(default_factory=dict)
    optimization_id: Id | None = None
    budget: RunBudget | None = None


class EvaluateProgram(Command):
    program_id: Id
    dataset_id: Id
    metric: str = "exact_match"
    version: Version | None = None
    evaluation_id: Id | None = None
    budget: RunBudget | None = None


# Corpora: documents a program retrieves from. A 1 MiB message holds at most ~47,000 of
# the smallest documents (`{"id":"a","text":"b"},` is 22 bytes); 10,000 keeps one
# message's work (and the one event it makes) small, as for dataset examples.
MAX_DOCUMENTS_PER_MESSAGE = 10_000


class Document(BaseModel):
    """One corpus document: `id` unique in its corpus, `text` searched, `metadata` kept.

    The text and metadata limits are the corpus's (aggregates/corpus.py), checked there
    so that each error can name the document's id.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    id: Id
    text: str
    metadata: dict[str, Any] | None = None


class RegisterCorpus(Command):
    corpus_id: Id | None = None
    name: Name
    documents: Annotated[list[Document], Field(max_length=MAX_DOCUMENTS_PER_MESSAGE)] = Field(
        default_factory=list
    )


class AppendDocuments(Command):
    corpus_id: Id
    documents: Annotated[list[Document], Field(min_length=1, max_length=MAX_DOCUMENTS_PER_MESSAGE)]


class RemoveDocuments(Command):
    corpus_id: Id
    document_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_DOCUMENTS_PER_MESSAGE)]


class CancelOptimization(Command):
    program_id: Id
    optimization_id: Id


class CancelGate(Command):
    """Ends a gated DeployProgram or SetTrafficSplit while its gate runs: the change is
    never applied. `command_id` is the gated command's envelope id."""

    program_id: Id
    command_id: Id


class RecordFeedback(Command):
    """Someone's judgement of one finished execution; many per execution.

    `score` must lie in the program's feedback scale (RegisterProgram's `feedback_scale`,
    0..1 by default; checked by the handler, as the scale is the program's);
    `corrected_outputs` are what the execution should have answered, checked against the
    signature's outputs of the version it ran. Who gave it is the envelope's `actor`.
    """

    execution_id: Id
    score: float | None = Field(default=None, allow_inf_nan=False)
    label: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    comment: Annotated[str, Field(max_length=MAX_FEEDBACK_COMMENT_CHARS)] | None = None
    corrected_outputs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> RecordFeedback:
        given = (self.score, self.label, self.comment, self.corrected_outputs)
        if all(value is None for value in given):
            raise ValueError("give a score, a label, a comment or corrected outputs")
        return self


PROGRAM_COMMANDS: tuple[type[Command], ...] = (
    RegisterProgram,
    UpdateProgram,
    TrainProgram,
    DeployProgram,
    RollbackProgram,
    DeprecateProgram,
    SetBudget,
    SetOnlineEvaluation,
    SetAlias,
    RemoveAlias,
    SetTrafficSplit,
    RegisterDataset,
    AppendExamples,
    PromoteExecutions,
    RegisterCorpus,
    AppendDocuments,
    RemoveDocuments,
    # Not on the optimizations topic: a running optimization holds its partition there,
    # and the cancel must get through while it runs.
    CancelOptimization,
    # Likewise: a gate runs on the optimizations topic, its cancel must get through.
    CancelGate,
    # Keyed by the execution id, but not on the executions topic: a quick write that
    # should not wait behind LM calls there (and is handled in order, one at a time).
    RecordFeedback,
)
EXECUTION_COMMANDS: tuple[type[Command], ...] = (ExecuteProgram,)
OPTIMIZATION_COMMANDS: tuple[type[Command], ...] = (OptimizeProgram, EvaluateProgram)
# Commands that run evaluations when they carry a `gate`: gated, they belong on the
# optimizations topic (their runs must not hold the programs topic, where their cancel
# and every quick program command travel); without a gate, on the programs topic.
GATED_COMMANDS: tuple[type[Command], ...] = (DeployProgram, SetTrafficSplit)

COMMAND_TYPES: dict[str, type[Command]] = {
    cls.__name__: cls for cls in (*PROGRAM_COMMANDS, *EXECUTION_COMMANDS, *OPTIMIZATION_COMMANDS)
}
