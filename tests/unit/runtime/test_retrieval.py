"""BM25 search over one corpus version, and the index cache: LRU, bounds, one build per key."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import bm25s
import pytest

from dspyops.runtime.retrieval import CorpusIndex, Hit, IndexCache, tokenize

DOCS = [
    ("paris", "Paris is the capital and largest city of France."),
    ("seine", "The Seine flows through Paris to the English Channel."),
    ("berlin", "Berlin is the capital of Germany."),
    ("stop", "The and of is."),
    ("lyon", "Lyon lies where the Rhone and the Saone meet."),
]


@pytest.fixture(scope="module")
def index() -> CorpusIndex:
    return CorpusIndex(DOCS)


def test_the_best_documents_first_with_their_text(index: CorpusIndex) -> None:
    hits = index.search("capital of France", 3)
    assert [hit.id for hit in hits] == ["paris", "berlin"]
    assert hits[0] == Hit("paris", DOCS[0][1], hits[0].score)
    assert hits[0].score > hits[1].score > 0
    assert [hit.id for hit in index.search("Paris", 1)] == ["paris"]


def test_only_matching_documents_are_hits(index: CorpusIndex) -> None:
    assert [hit.id for hit in index.search("rhone river", 5)] == ["lyon"]
    assert index.search("the of and", 5) == []
    assert index.search("zebra", 5) == []
    assert index.search("", 5) == []


def test_k_must_be_positive(index: CorpusIndex) -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search("paris", 0)


def test_a_corpus_without_words_finds_nothing() -> None:
    assert CorpusIndex([]).search("paris", 3) == []
    assert CorpusIndex([("a", "the of and")]).search("the", 3) == []
    assert CorpusIndex([]).size == 0


def test_equal_scores_keep_the_documents_order_even_at_the_cut() -> None:
    same = CorpusIndex([(f"d{i}", "alpha beta") for i in range(50)])
    assert [hit.id for hit in same.search("alpha", 5)] == ["d0", "d1", "d2", "d3", "d4"]


def test_the_same_scores_as_bm25s_retrieve() -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(300)]
    docs = [(f"d{i}", " ".join(rng.choices(words, k=8))) for i in range(2_000)]
    ours = CorpusIndex(docs)
    # The reference is built here with bm25s alone, with the settings the module
    # documents (English stop words, Lucene scoring), not through CorpusIndex.
    reference = bm25s.BM25(method="lucene")
    reference.index(
        bm25s.tokenize([text for _, text in docs], stopwords="en", show_progress=False),
        show_progress=False,
    )
    for _ in range(50):
        query = " ".join(rng.choices(words, k=3))
        hits = ours.search(query, 10)
        assert ours.bm25 is not None
        assert hits, query  # every word is in some document: an empty answer is wrong
        found, scores = reference.retrieve(
            bm25s.tokenize(query, stopwords="en", show_progress=False, return_ids=False),
            k=10,
            show_progress=False,
        )
        theirs = [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if s > 0]
        assert [hit.score for hit in hits] == pytest.approx([s for _, s in theirs])
        # Below the lowest score returned, equal scores may be cut differently.
        cut = hits[-1].score if hits else 0.0
        assert {hit.id for hit in hits if hit.score > cut} == {
            docs[i][0] for i, score in theirs if score > cut
        }


def test_tokens_are_bm25s_english_ones() -> None:
    assert tokenize("The Capital OF France, a city!") == [["capital", "france", "city"]]


def test_building_and_searching_print_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    CorpusIndex([(f"d{i}", f"document {i} about things") for i in range(500)]).search("things", 3)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


class Loader:
    """Documents of `size` per key; counts calls per key; can wait or fail."""

    def __init__(self, size: int = 3, delay: float = 0.0) -> None:
        self.size = size
        self.delay = delay
        self.calls: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.fail: set[str] = set()

    def __call__(self, corpus_id: str, version: int) -> Sequence[tuple[str, str]]:
        with self.lock:
            self.calls[(corpus_id, version)] = self.calls.get((corpus_id, version), 0) + 1
        time.sleep(self.delay)
        if corpus_id in self.fail:
            raise LookupError(f"no corpus {corpus_id}")
        return [(f"{corpus_id}-{i}", f"{corpus_id} word{i}") for i in range(self.size)]


def test_a_cached_index_is_built_once_and_searched() -> None:
    load = Loader()
    cache = IndexCache(load)
    first = cache.get("wiki", 1)
    assert cache.get("wiki", 1) is first
    assert cache.get("wiki", 2) is not first
    assert [hit.id for hit in cache.search("wiki", 1, "word2", 3)] == ["wiki-2"]
    assert load.calls == {("wiki", 1): 1, ("wiki", 2): 1}
    assert cache.builds == 2


def test_the_least_recently_used_index_goes_first() -> None:
    cache = IndexCache(Loader(), max_indexes=2)
    cache.get("a", 1)
    cache.get("b", 1)
    cache.get("a", 1)
    cache.get("c", 1)
    assert cache.keys() == [("a", 1), ("c", 1)]


def test_the_documents_bound_evicts_but_keeps_the_newest_index() -> None:
    cache = IndexCache(Loader(size=3), max_indexes=10, max_documents=7)
    cache.get("a", 1)
    cache.get("b", 1)
    assert cache.documents == 6
    cache.get("c", 1)
    assert (cache.keys(), cache.documents) == ([("b", 1), ("c", 1)], 6)
    big = IndexCache(Loader(size=5), max_documents=4)
    big.get("a", 1)
    big.get("b", 1)
    assert big.keys() == [("b", 1)]


def test_many_callers_at_once_share_one_build() -> None:
    load = Loader(delay=0.3)
    cache = IndexCache(load)
    start = threading.Barrier(16)

    def ask(_: int) -> CorpusIndex:
        start.wait()
        return cache.get("wiki", 7)

    with ThreadPoolExecutor(16) as pool:
        indexes = list(pool.map(ask, range(16)))
    assert load.calls == {("wiki", 7): 1}
    assert all(index is indexes[0] for index in indexes)
    assert cache.builds == 1


def test_different_keys_build_at_the_same_time() -> None:
    # The build of "a" waits for the build of "b" to start: were builds serialized, "a"
    # would time out.
    b_started = threading.Event()

    def load(corpus_id: str, version: int) -> Sequence[tuple[str, str]]:
        if corpus_id == "a":
            assert b_started.wait(timeout=5), "builds ran one at a time"
        else:
            b_started.set()
        return [(corpus_id, f"text of {corpus_id}")]

    cache = IndexCache(load)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(cache.get, "a", 1)
        time.sleep(0.05)
        b = pool.submit(cache.get, "b", 1)
        assert (a.result().ids, b.result().ids) == (["a"], ["b"])


def test_a_failed_build_reaches_every_waiter_and_is_tried_again() -> None:
    load = Loader(delay=0.2)
    load.fail.add("bad")
    cache = IndexCache(load)
    start = threading.Barrier(4)

    def ask(_: int) -> str:
        start.wait()
        try:
            cache.get("bad", 1)
        except LookupError as exc:
            return str(exc)
        return "built"

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(ask, range(4))) == ["no corpus bad"] * 4
    assert load.calls == {("bad", 1): 1}
    load.fail.clear()
    assert cache.get("bad", 1).size == 3
    assert load.calls == {("bad", 1): 2}
    assert cache.keys() == [("bad", 1)]


def test_bounds_must_hold_something() -> None:
    with pytest.raises(ValueError, match="at least one"):
        IndexCache(Loader(), max_indexes=0)
