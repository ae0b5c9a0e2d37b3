"""What dspyops lends a plugin module: the context it is built with, and search.

A plugin's class is built as ``cls(context)``; a plugin author needs only this module
for types (the registry that finds and builds plugins is ``runtime.plugins``). The
retrieval behind ``search`` is the runtime's: it hands in a callable of this shape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import dspy


@dataclass(frozen=True)
class Passage:
    """One passage a search found; ``score`` is the retriever's own, higher is better."""

    doc_id: str
    text: str
    score: float


class Search(Protocol):
    """The ``k`` best passages of corpus ``corpus_id`` for ``query``, best first."""

    def __call__(self, corpus_id: str, query: str, k: int) -> list[Passage]: ...


@dataclass(frozen=True)
class PluginContext:
    """What dspyops lends a plugin module when it builds one.

    ``signature`` is the DSPy class compiled from the plugin's ``dspyops_signature``
    (with the program's instructions and field descriptions, when it has them);
    ``options`` is an instance of the plugin's ``Options`` model, or None without one.
    """

    search: Search
    signature: type[dspy.Signature]
    options: Any = None

    async def asearch(self, corpus_id: str, query: str, k: int) -> list[Passage]:
        """``search`` for ``aforward``: in a thread, so the worker's event loop (and every
        other execution on it) does not wait while an index is built or searched."""
        return await asyncio.to_thread(self.search, corpus_id, query, k)

    # Lent, not owned: DSPy deep-copies modules (load_state's trial run, optimizers'
    # student copies), and the search service behind the context is never copied.
    def __deepcopy__(self, memo: dict[int, Any]) -> PluginContext:
        return self
