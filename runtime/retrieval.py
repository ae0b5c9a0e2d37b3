"""BM25 retrieval over one corpus version, and a bounded cache of the indexes built.

`CorpusIndex` indexes (id, text) pairs with bm25s; `search(query, k)` returns the best
`Hit`s. `IndexCache` keeps the indexes of recent (corpus id, version) keys, least
recently used out first, bounded by a number of indexes and of documents, and builds
each key once however many threads ask for it at the same time.

Everything here is synchronous and thread-safe. Building an index of 100,000 short
documents takes one to a few seconds: callers on an event loop run `IndexCache.get` (or
`search`) in a thread (`asyncio.to_thread`), never on the loop. An index is never
changed once built, so searches run in many threads at once.

Imports bm25s and numpy, nothing of dspyops: the documents come from a loader the
caller passes in (the worker's is `aggregates.app.corpora.document_texts`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import bm25s
import numpy as np

# bm25s's English stop words, for documents and queries alike.
STOPWORDS = "en"

# (corpus id, version) -> its documents as (id, text) pairs.
Loader = Callable[[str, int], Sequence[tuple[str, str]]]
Key = tuple[str, int]


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    score: float


def tokenize(texts: str | list[str]) -> list[list[str]]:
    """bm25s's tokens (lower-cased words of 2+ characters, English stop words out)."""
    tokens: list[list[str]] = bm25s.tokenize(
        texts, stopwords=STOPWORDS, show_progress=False, return_ids=False
    )
    return tokens


class CorpusIndex:
    """BM25 (bm25s, Lucene scoring) over one corpus version's documents."""

    def __init__(self, documents: Sequence[tuple[str, str]]) -> None:
        self.ids = [doc_id for doc_id, _ in documents]
        self.texts = [text for _, text in documents]
        tokens = bm25s.tokenize(self.texts, stopwords=STOPWORDS, show_progress=False)
        # None when no document has a token to index (no documents, or only stop words).
        self.bm25: bm25s.BM25 | None = None
        if tokens.vocab:
            self.bm25 = bm25s.BM25()
            self.bm25.index(tokens, show_progress=False)

    @property
    def size(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int) -> list[Hit]:
        """The `k` best documents for `query`, best first; only documents that match a
        word of the query (score > 0), so fewer than `k` when fewer match. Equal scores
        keep the documents' order."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        (words,) = tokenize(query)
        if self.bm25 is None or not words:
            return []
        scores = self.bm25.get_scores(words)
        best = _top(scores, k)
        return [Hit(self.ids[i], self.texts[i], float(scores[i])) for i in best.tolist()]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` best positive scores, best first, equal scores in index order.

    Selects among the matches only: numpy's partition over a whole score array that is
    mostly zeros (ties) is many times slower than over the matches (bm25s's `retrieve`
    does that).
    """
    matched = np.flatnonzero(scores > 0)
    if matched.size > k:
        values = scores[matched]
        kth = -np.partition(-values, k - 1)[k - 1]
        above = matched[values > kth]
        tied = matched[values == kth][: k - above.size]
        matched = np.sort(np.concatenate([above, tied]))
    return matched[np.argsort(-scores[matched], kind="stable")]


class IndexCache:
    """The indexes of recent corpus versions, built through `load` on first use.

    At most `max_indexes` indexes and `max_documents` documents in all are kept; the least
    recently used go first. An index larger than `max_documents` on its own is kept
    until the next one is built. A key being built is built once: other callers wait
    for that build and share its index, or its error (which is not cached: the next call
    tries again).
    """

    def __init__(self, load: Loader, *, max_indexes: int = 8, max_documents: int = 500_000) -> None:
        if max_indexes < 1 or max_documents < 1:
            raise ValueError("an IndexCache holds at least one index and one document")
        self._load = load
        self.max_indexes = max_indexes
        self.max_documents = max_documents
        self._lock = threading.Lock()
        self._ready: OrderedDict[Key, CorpusIndex] = OrderedDict()
        self._building: dict[Key, Future[CorpusIndex]] = {}
        # Indexes built since the cache was made (a health and test signal).
        self.builds = 0

    def get(self, corpus_id: str, version: int) -> CorpusIndex:
        """The index of the corpus at `version`, built (in this thread) if not cached."""
        key = (corpus_id, version)
        with self._lock:
            index = self._ready.get(key)
            if index is not None:
                self._ready.move_to_end(key)
                return index
            pending = self._building.get(key)
            if pending is None:
                pending = self._building[key] = Future()
                building = True
            else:
                building = False
        if not building:
            return pending.result()
        try:
            index = CorpusIndex(self._load(corpus_id, version))
        except BaseException as exc:
            with self._lock:
                del self._building[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._building[key]
            self._ready[key] = index
            self.builds += 1
            self._evict()
        pending.set_result(index)
        return index

    def search(self, corpus_id: str, version: int, query: str, k: int) -> list[Hit]:
        return self.get(corpus_id, version).search(query, k)

    def keys(self) -> list[Key]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._ready)

    @property
    def documents(self) -> int:
        with self._lock:
            return self._documents()

    def _documents(self) -> int:
        return sum(index.size for index in self._ready.values())

    def _evict(self) -> None:
        while len(self._ready) > 1 and (
            len(self._ready) > self.max_indexes or self._documents() > self.max_documents
        ):
            self._ready.popitem(last=False)
