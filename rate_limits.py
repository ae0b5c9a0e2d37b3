"""Per-producer rate limits on commands: one runaway producer cannot starve the others.

`DSPYOPS_COMMAND_RATE_LIMIT` holds one or more rates in the `limits` library's notation
("100/second", "100/second;3000/minute"), applied per producer: the envelope's `source`
(by default) or its `actor` (`DSPYOPS_COMMAND_RATE_LIMIT_KEY`). The windows are the
`limits` library's sliding-window counters, in this worker process's memory: with N
worker processes a producer gets up to N times the rate, as each process counts the
commands of the partitions it holds. A command over the limit is answered
`CommandRejected` (`rate_limited`, loc `source` or `actor`, `ctx.retry_after_s`) and not
recorded, so the same command may be sent again once the window allows.

A command is counted once: the domain asks after looking up the command's stored
outcome (a redelivered command is answered from the store, uncounted), and an id
already admitted (a retry after a write conflict, or a budget wait) is admitted again
without counting.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Literal

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from dspyops.aggregates.errors import ErrorDict

RateKey = Literal["source", "actor"]
# Ids admitted lately, admitted again for free; a bounded memory of them.
ADMITTED_IDS = 10_000
# A producer without a source or actor still has a bucket of its own.
UNNAMED = "(none)"


def parse_rates(text: str) -> list[RateLimitItem]:
    """The rates of `text`, or ValueError saying what the notation is."""
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a rate limit: write e.g. '100/second' or '100/second;3000/minute'"
        ) from exc
    if not items:
        raise ValueError(f"{text!r} names no rate")
    return list(items)


class CommandRateLimit:
    def __init__(self, rates: str, key: RateKey = "source") -> None:
        self._items = parse_rates(rates)
        self._key = key
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._admitted: OrderedDict[str, None] = OrderedDict()
        # handle() runs in the worker's store threads.
        self._lock = threading.Lock()

    def admission(self, command_id: str, source: str | None, actor: str | None) -> list[ErrorDict]:
        """Nothing when the command may go on (it is counted), else the refusal."""
        producer = (source if self._key == "source" else actor) or UNNAMED
        with self._lock:
            if command_id in self._admitted:
                self._admitted.move_to_end(command_id)
                return []
            for item in self._items:
                if not self._limiter.test(item, producer):
                    return [self._refusal(item, producer)]
            for item in self._items:
                self._limiter.hit(item, producer)
            self._admitted[command_id] = None
            if len(self._admitted) > ADMITTED_IDS:
                self._admitted.popitem(last=False)
        return []

    def _refusal(self, item: RateLimitItem, producer: str) -> ErrorDict:
        reset_at = self._limiter.get_window_stats(item, producer).reset_time
        retry_after_s = round(max(0.0, reset_at - time.time()), 3)
        return {
            "loc": [self._key],
            "msg": (
                f"{self._key} {producer!r} is over the rate limit of {item}: send again in "
                f"{retry_after_s:g} s"
            ),
            "type": "rate_limited",
            "ctx": {"limit": str(item), "producer": producer, "retry_after_s": retry_after_s},
        }
