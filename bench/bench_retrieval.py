"""Retrieval benchmark: `CorpusIndex.search` against bm25s's own `retrieve` on the same
index, measured in one run.

    .venv/bin/python -m bench.bench_retrieval [--documents 100000] [--queries 2000] [--k 10]

Short synthetic documents (deterministic: a seeded generator draws 6 to 16 words each
from a fixed vocabulary with Zipf-like weights, English stop words included) are
indexed once through `CorpusIndex`. Each query then runs through both paths, which go
first in turn: ours (`search`: tokenize, score, best k matches as `Hit`s) and theirs
(`retrieve(bm25s.tokenize(query, ...), k)`, bm25s's documented way). Prints the build
time, p50/p99 per query for both, the throughput ratio ours/theirs (target >= 0.8), and
whether both found the same scores for the matching documents.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time

import bm25s

from dspyops.runtime.retrieval import STOPWORDS, CorpusIndex

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "dar", "qui", "zen"]
STOP = ["the", "of", "and", "a", "in", "to", "is", "was", "for", "on"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
    return STOP + sorted(words)


def corpus(seed: int, documents: int) -> tuple[list[tuple[str, str]], list[str], list[float]]:
    """(id, text) pairs, the vocabulary and its cumulative weights, the same for a seed."""
    rng = random.Random(seed)
    words = vocabulary(rng, 20_000)
    # Cumulative once: `choices` would sum 20,000 weights on every call otherwise.
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    docs = [
        (f"doc-{n}", " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(6, 16))))
        for n in range(documents)
    ]
    return docs, words, weights


def queries(seed: int, count: int, words: list[str], weights: list[float]) -> list[str]:
    rng = random.Random(seed + 1)
    return [
        " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(2, 5))) for _ in range(count)
    ]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    docs, words, weights = corpus(args.seed, args.documents)
    started = time.perf_counter()
    index = CorpusIndex(docs)
    build_s = time.perf_counter() - started
    assert index.bm25 is not None
    bm25 = index.bm25
    chars = sum(len(text) for _, text in docs)
    print(
        f"built: {index.size:,} documents ({chars / 1e6:.1f} M characters, "
        f"{len(bm25.vocab_dict):,} terms) in {build_s:.2f} s"
    )

    def ours(query: str) -> list[float]:
        return [hit.score for hit in index.search(query, args.k)]

    def theirs(query: str) -> list[float]:
        tokens = bm25s.tokenize(query, stopwords=STOPWORDS, show_progress=False)
        _, scores = bm25.retrieve(tokens, k=args.k, show_progress=False)
        return [float(score) for score in scores[0] if score > 0]

    asked = queries(args.seed, args.queries, words, weights)
    for query in asked[:20]:  # warm-up
        ours(query)
        theirs(query)
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    agree = 0
    for n, query in enumerate(asked):
        found: dict[str, list[float]] = {}
        order = [("ours", ours), ("theirs", theirs)]
        for name, path in order if n % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            found[name] = path(query)
            times[name].append(time.perf_counter() - started)
        same = len(found["ours"]) == len(found["theirs"]) and all(
            abs(a - b) <= 1e-4 * max(1.0, abs(b))
            for a, b in zip(found["ours"], found["theirs"], strict=True)
        )
        agree += same

    p50 = {name: percentile(values, 50) * 1000 for name, values in times.items()}
    p99 = {name: percentile(values, 99) * 1000 for name, values in times.items()}
    rate = {name: len(values) / sum(values) for name, values in times.items()}
    for name, label in (("ours", "CorpusIndex.search"), ("theirs", "bm25s retrieve")):
        print(
            f"{label:<19} p50 {p50[name]:6.3f} ms  p99 {p99[name]:6.3f} ms  "
            f"{rate[name]:8.0f} queries/s"
        )
    print(f"ratio ours/theirs (throughput): {rate['ours'] / rate['theirs']:.2f}  (target >= 0.8)")
    print(f"ratio ours/theirs (p50 speed):  {p50['theirs'] / p50['ours']:.2f}")
    print(f"same scores for the matches:    {agree}/{len(asked)} queries (k={args.k})")


if __name__ == "__main__":
    main()
