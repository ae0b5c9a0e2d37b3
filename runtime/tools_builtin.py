"""The two tools dspyops ships: ``arithmetic`` and ``corpus_search``.

Each is a plain function whose docstring (or, for ``corpus_search``, ``corpus_search_desc``)
is the description the LM reads. Both raise ``ValueError`` with a message written for
the LM; ReAct shows it as the step's observation and the agent carries on.

``corpus_search`` needs the search of the step's corpus, given per execution by whoever
runs the step: any ``search(query, k) -> Sequence[Passage]`` where a passage has an
``id`` and a ``text`` (read-only attributes are enough, so a frozen dataclass from the
retrieval code fits ``Passage`` without importing anything from here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from dspyops.runtime import arithmetic as _arithmetic

# corpus_search bounds: passages per call, query and passage length the LM gets.
MAX_K = 20
MAX_QUERY_CHARS = 500
MAX_PASSAGE_CHARS = 2000
NO_PASSAGES = "no passages found"


def arithmetic(expression: str) -> str:
    """Evaluate an arithmetic expression and return its value.

    Numbers, + - * / // % **, unary + and -, and parentheses; no names, functions or
    comparisons. At most 300 characters, exponents at most 10000 in size, integers at
    most 4096 bits. Example: (17 * 3 + 4) / 5
    """
    value = _arithmetic.evaluate(expression)
    return repr(value) if isinstance(value, float) else str(value)


class Passage(Protocol):
    """What a search returns per hit: the passage's id in its corpus and its text."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


SearchFn = Callable[[str, int], Sequence[Passage]]


def corpus_search_desc(k: int) -> str:
    return (
        f"Search the corpus for passages relevant to a query; returns the top {k} passages, "
        "each as [id] text, or 'no passages found'. Write the query as keywords."
    )


def make_corpus_search(search: SearchFn, *, k: int) -> Callable[[str], str]:
    """The ``corpus_search`` function for one corpus: ``search(query, k)`` gives the hits."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")

    def corpus_search(query: str) -> str:
        text = query.strip()
        if not text:
            raise ValueError("empty query: write a few keywords")
        if len(text) > MAX_QUERY_CHARS:
            raise ValueError(f"query too long ({len(text)} characters, at most {MAX_QUERY_CHARS})")
        hits = list(search(text, k))[:k]
        if not hits:
            return NO_PASSAGES
        return "\n\n".join(f"[{hit.id}] {_clip(hit.text)}" for hit in hits)

    return corpus_search


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_PASSAGE_CHARS:
        return text
    return text[: MAX_PASSAGE_CHARS - 1] + "…"
