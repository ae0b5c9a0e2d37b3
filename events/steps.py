"""The wire form of a pipeline's steps: what `RegisterProgram.steps` holds.

A pipeline is a list of named steps, each a module kind over its own signature, whose
inputs are bound to the program's inputs (`"question"`) or to an earlier step's outputs
(`"retrieve.passages"`); the program's outputs are bound the same way. What the wire
can say is checked here (names, kinds, bounds); what needs the whole program (every
input bound exactly once, types that fit, tools and corpora that exist) is checked when
the program registers. The step grammar, with examples: docs/programs.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dspyops.events.fields import MAX_SIGNATURE_CHARS, MAX_TEXT_CHARS, Id

MAX_STEPS = 32

StepKind = Literal["Predict", "ChainOfThought", "ReAct", "Retrieve", "BestOfN", "Refine"]
# A step's name becomes the attribute (and predictor name) of the compiled dspy.Module.
StepName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
# `field` (a program input) or `step.field` (an earlier step's output).
Reference = Annotated[
    str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}(\.[A-Za-z][A-Za-z0-9_]{0,63})?$")
]
ToolName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]


class Step(BaseModel):
    """One step. Fields after `bindings` belong to some kinds only (checked at registration):

    - Retrieve: `corpus`, `k` (its signature is fixed: query -> passages, document_ids);
    - ReAct: `tools`, `max_iters`, and `corpus` when it uses the corpus_search tool;
    - BestOfN / Refine: `attempts`, `reward` (a registered metric's name), `threshold`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: StepName
    kind: StepKind = "Predict"
    signature: Annotated[str, Field(min_length=1, max_length=MAX_SIGNATURE_CHARS)] | None = None
    instructions: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None
    # Step input -> reference; an input left out reads the program input of its name.
    bindings: dict[str, Reference] = Field(default_factory=dict)
    corpus: Id | None = None
    k: Annotated[int, Field(ge=1, le=50)] | None = None
    tools: Annotated[list[ToolName], Field(min_length=1, max_length=16)] | None = None
    max_iters: Annotated[int, Field(ge=1, le=20)] | None = None
    attempts: Annotated[int, Field(ge=1, le=10)] | None = None
    reward: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
