"""The execution's usage tracker is shared with DSPy's worker threads (dspy.Parallel);
its totals are read while a thread that outlived a timeout may still add to it."""

from __future__ import annotations

import threading

from dspyops.runtime.trace import UsageTo

# Entries added while the reader copies: each read copies the whole dict under the lock,
# so the test's cost grows with the square of N. Without the lock, 8000 raised
# "dictionary changed size" in 40 runs of 40 (20 000 did too, at 5 to 10 times the cost).
N = 8_000


def test_totals_are_read_safely_while_another_thread_adds_usage() -> None:
    tracker = UsageTo(lambda entry: None)
    done = threading.Event()

    def add() -> None:
        for n in range(N):  # a new LM name each time: the dict grows under the reader
            tracker.add_usage(f"lm-{n}", {"prompt_tokens": 1, "completion_tokens": 1})
        done.set()

    adder = threading.Thread(target=add)
    adder.start()
    reads = 0
    while not done.is_set():
        totals, entries = tracker.totals()  # raised "dictionary changed size" unlocked
        assert set(totals) <= set(entries)
        reads += 1
    adder.join()
    totals, entries = tracker.totals()
    assert len(totals) == len(entries) == N
    assert reads > 0
