"""The outbox relay inside the worker: every stored event reaches the events topic, in order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg

from dspyops.aggregates.app import CommandContext, DspyOps, handle
from dspyops.bootstrap import open_store
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.commands import RegisterProgram, UpdateProgram
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import settings_for, stored_events


def _write_events(store: DspyOps, unique: str, start: int, count: int) -> None:
    """Events written straight into the store, as if by a worker that died before relaying."""
    for n in range(start, start + count):
        ctx = CommandContext(command_id=f"c-{unique}-{n}", correlation_id=f"c-{unique}-{n}")
        cmd: RegisterProgram | UpdateProgram
        if n % 2 == 0:
            cmd = RegisterProgram(program_id=f"p{n}", name=f"p{n}", signature="q: str -> a: str")
        else:
            cmd = UpdateProgram(program_id=f"p{n - 1}", description=f"description {n}")
        outcome = handle(store, cmd, ctx)
        assert not outcome.rejected, outcome


def _positions(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["position"]) for m in messages]


async def test_relay_publishes_every_stored_event_in_order_and_resumes_after_kill_9(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    settings = settings_for(env)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.bootstrap_servers, topics.all, partitions=4)
    store = open_store(database_url, settings.event_store_schema)
    _write_events(store, unique, 0, 40)
    log = tmp_path / "worker.log"
    async with TopicReader(settings.bootstrap_servers, topics.events) as events:
        worker = WorkerProcess(env, log).start()
        try:
            stored = stored_events(database_url, settings.event_store_schema)
            first_phase = len(stored)
            await events.wait_for(lambda ms: len(ms) >= first_phase, timeout_s=90)
            # The relay records how far it got; wait for that before killing it.
            deadline = time.monotonic() + 30
            while _relay_position(database_url, settings.event_store_schema) < first_phase:
                assert time.monotonic() < deadline, "the relay never recorded its position"
                await asyncio.sleep(0.05)
            worker.kill()
            # Written while no relay runs: published once the worker is back.
            _write_events(store, unique, 40, 40)
            await asyncio.sleep(0.2)
            worker = WorkerProcess(env, log).start()
            stored = stored_events(database_url, settings.event_store_schema)
            await events.wait_for(
                lambda ms: set(_positions(ms)) >= set(range(1, len(stored) + 1)), timeout_s=90
            )
        finally:
            worker.stop()
    positions = _positions(events.messages)
    assert sorted(set(positions)) == list(range(1, len(stored) + 1))
    # Resumed from the recorded position: nothing of the first phase was sent again.
    assert sorted(p for p in positions if p <= first_phase) == list(range(1, first_phase + 1))
    # At least once: a crash may repeat the tail of one batch, never skip. Order holds per
    # aggregate (its key picks the partition); `position` gives the global order.
    per_aggregate: dict[str, list[int]] = {}
    for m in events.messages:
        per_aggregate.setdefault(str(m["aggregateid"]), []).append(int(m["position"]))
    for seen in per_aggregate.values():
        first_seen = list(dict.fromkeys(seen))
        assert first_seen == sorted(first_seen)
    by_position = {int(m["position"]): m for m in events.messages}
    for position, (originator, version, topic) in enumerate(stored, start=1):
        message = by_position[position]
        assert message["aggregateid"] == originator
        assert message["aggregateversion"] == version
        assert str(message["type"]).endswith(topic.rsplit(":", 1)[-1])
    # Partitions are read in any interleaving: find p0's registration by its subject.
    registered = [
        m
        for m in events.messages
        if str(m["type"]).endswith("Program.Registered") and m["subject"] == "p0"
    ]
    assert registered
    assert {m["causationid"] for m in registered} == {f"c-{unique}-0"}


def _relay_position(database_url: str, schema: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", [f"{schema}.relay_positions"]).fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute(f'SELECT max(position) FROM "{schema}".relay_positions').fetchone()
    return int(row[0]) if row and row[0] is not None else 0
