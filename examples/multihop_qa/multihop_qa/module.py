"""MultiHopQA: search a corpus in hops, then answer from what was found.

The dspyops plugin contract (docs/plugins.md), as this class keeps it:

- ``dspyops_signature`` declares the program's fields in dspyops' own grammar;
- ``Options`` validates the program's options (unknown keys refused);
- ``__init__(context)`` builds the predictors; ``context`` is kept whole (DSPy
  deep-copies modules; the context is shared, never copied);
- ``forward`` and ``aforward`` return a ``dspy.Prediction`` holding ``answer``, and
  keep nothing on ``self`` between calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dspy
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from dspyops.runtime.plugin_context import PluginContext


class MultiHopOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus_id: str = Field(min_length=1, description="the dspyops corpus to search")
    hops: int = Field(default=2, ge=1, le=5, description="search rounds before answering")
    passages_per_hop: int = Field(default=3, ge=1, le=20, description="k of each search")


class QueryWriter(dspy.Signature):
    """Write a search query that finds what is still missing to answer the question."""

    context: list[str] = dspy.InputField(desc="passages found so far")
    question: str = dspy.InputField()
    query: str = dspy.OutputField()


class MultiHopQA(dspy.Module):
    dspyops_signature = "question: str -> answer: str"
    Options = MultiHopOptions

    def __init__(self, context: PluginContext) -> None:
        super().__init__()
        self.context = context
        self.generate_query = dspy.ChainOfThought(QueryWriter)
        # The program's own signature (its instructions and field descriptions), with
        # the passages as one more input.
        answer = context.signature.append(
            "context", dspy.InputField(desc="passages found by searching"), type_=list[str]
        )
        self.answer = dspy.ChainOfThought(answer)

    @property
    def options(self) -> MultiHopOptions:
        options: MultiHopOptions = self.context.options
        return options

    def forward(self, question: str) -> dspy.Prediction:
        passages: list[str] = []
        for _ in range(self.options.hops):
            query = self.generate_query(context=passages, question=question).query
            passages = _merge(passages, self._search(query))
        answer = self.answer(question=question, context=passages).answer
        return dspy.Prediction(answer=answer)

    async def aforward(self, question: str) -> dspy.Prediction:
        passages: list[str] = []
        for _ in range(self.options.hops):
            written = await self.generate_query.acall(context=passages, question=question)
            found = await self.context.asearch(
                self.options.corpus_id, str(written.query), self.options.passages_per_hop
            )
            passages = _merge(passages, [passage.text for passage in found])
        answered = await self.answer.acall(question=question, context=passages)
        return dspy.Prediction(answer=answered.answer)

    def _search(self, query: Any) -> list[str]:
        found = self.context.search(
            self.options.corpus_id, str(query), self.options.passages_per_hop
        )
        return [passage.text for passage in found]


def _merge(kept: list[str], found: list[str]) -> list[str]:
    """The passages so far, then the new ones not seen yet, in order."""
    merged = list(kept)
    merged.extend(text for text in dict.fromkeys(found) if text not in kept)
    return merged
