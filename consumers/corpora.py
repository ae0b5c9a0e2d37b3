"""Corpus search for a worker's programs: one BM25 index per corpus version, shared.

Indexes are built from the event store's documents on first use (`IndexCache`, bounded
and thread-safe). Retrieve steps and plugins' `asearch` search in a thread; ReAct's
`corpus_search` tool is a sync DSPy tool (optimizers call agents synchronously) and
searches where the agent calls it, which on the async path is the event loop: a search
of a built index takes well under a millisecond, a first build does not. A plan names
the corpus versions its steps search; a plugin searching a corpus
its plan does not name gets that corpus's latest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from dspyops.aggregates.app import DspyOps, Plan
from dspyops.aggregates.app.corpora import corpus_versions, document_texts
from dspyops.runtime.pipeline import Passage, Search
from dspyops.runtime.retrieval import IndexCache


class CorpusSearch:
    def __init__(self, app: DspyOps, *, max_indexes: int = 8) -> None:
        self._app = app
        self.cache = IndexCache(partial(document_texts, app), max_indexes=max_indexes)

    def for_plan(self, plan: Plan) -> Search:
        versions = dict(plan.corpora)

        def search(corpus_id: str, query: str, k: int) -> Sequence[Passage]:
            version = versions.get(corpus_id)
            if version is None:
                version = corpus_versions(self._app, [corpus_id])[corpus_id]
            return self.cache.search(corpus_id, version, query, k)

        return search
