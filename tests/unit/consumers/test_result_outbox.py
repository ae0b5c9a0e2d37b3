"""OutboxDelivery: what finishes while an outbox write is in flight is written together."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

from dspyops.consumers.records import Outgoing
from dspyops.consumers.result_outbox import OutboxDelivery, ResultOutbox
from dspyops.events.envelope import command_envelope, result_envelope


def _message(n: int) -> Outgoing:
    cmd = command_envelope("ExecuteProgram", {"program_id": "p"}, id=f"cmd-{n}")
    return Outgoing("results", f"c{n}", result_envelope(cmd, "Done", {}, subject="p"))


class _SlowOutbox:
    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.started = threading.Event()

    def put(self, messages: Sequence[Outgoing]) -> int:
        self.started.set()
        time.sleep(0.05)
        self.writes.append([m.envelope.id for m in messages])
        return len(messages)


async def test_records_finishing_during_a_write_share_the_next_one() -> None:
    outbox = _SlowOutbox()
    wakes: list[int] = []
    delivery = OutboxDelivery(cast(ResultOutbox, outbox), None, lambda: wakes.append(1))
    first = asyncio.create_task(delivery([_message(0)]))
    await asyncio.to_thread(outbox.started.wait, 5)
    rest: list[Any] = [delivery([_message(n), _message(n + 100)]) for n in range(1, 5)]
    await asyncio.gather(first, *rest)
    assert outbox.writes[0] == [_message(0).envelope.id]
    assert len(outbox.writes) == 2
    assert len(outbox.writes[1]) == 8
    assert len(wakes) == 2  # the relay is woken after each committed write


async def test_nothing_to_deliver_writes_nothing() -> None:
    outbox = _SlowOutbox()
    delivery = OutboxDelivery(cast(ResultOutbox, outbox), None, lambda: None)
    await delivery([])
    assert outbox.writes == []
