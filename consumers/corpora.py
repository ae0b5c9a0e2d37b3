"""Corpus search for a worker's programs: one BM25 index per corpus version, shared.

Indexes are built from the event store's documents on first use (`IndexCache`, bounded
and thread-safe) and searched from threads, never on the event loop: Retrieve steps and
ReAct's `corpus_search` tool run their search in a thread (`runtime.pipeline.Retrieve`,
`runtime.tools._Tool`), and a plugin's `aforward` searches with `context.asearch`, which
does too (its sync `search` is for `forward`). A plan names the corpus versions its
steps search; a plugin searching a corpus its plan does not name gets that corpus's
latest version.
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
