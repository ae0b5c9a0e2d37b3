"""Traffic splits through Kafka with the worker in this process (issue 18, parts 3 and 6).

10,000 executions over a 90/10 split of `production` land within ±2 % of the weights,
every routing key always gets the same version, and each result says why. Then a third,
guarded arm whose version always fails is taken out by the guard (a program event with
actor `dspyops` and a `ProgramSplitArmRemoved` result), while the healthy arms stay.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dspy.lm15 import Request

from dspyops.aggregates.program import Program
from dspyops.bootstrap import open_store
from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import chat_reply
from tests.support.optimization import ScriptedProfiles, prompt_text, settings_for_test
from tests.support.scripted_lm import ScriptedLM

__all__ = ["settings_for_test"]  # fixture

BROKEN = "BROKEN-VERSION"
# 2,000 users, 2 executions each: a share of users, held to ±2 % (3 standard deviations).
# The share is the users' (a user always lands in the same bucket), so more executions
# per user would not tighten it; two show that a user's choice holds.
KEYS = 2_000
N = 2 * KEYS


def reply(request: Request) -> str:
    # The version whose instructions say BROKEN answers what no adapter can parse.
    if BROKEN in f"{request.system} {prompt_text(request)}":
        return "nothing to see here"
    return chat_reply(answer="9")


@pytest.fixture
async def split_stack(settings_for_test: Settings) -> AsyncIterator[tuple[Settings, Topics]]:
    settings = settings_for_test
    await prepare_topics(settings)
    app = build_worker_app(settings, profiles=ScriptedProfiles(ScriptedLM(reply)), relay=False)
    await app.start()
    try:
        yield settings, Topics(settings.topic_prefix)
    finally:
        await app.stop()


async def test_a_split_routes_by_weight_and_key_and_the_guard_removes_a_failing_arm(
    split_stack: tuple[Settings, Topics], unique: str
) -> None:
    settings, topics = split_stack
    # A fixed id (the topics and event store are the test's own): the buckets, and so the
    # shares, are the same in every run.
    program_id = "split-canary"
    bootstrap = settings.bootstrap_servers

    async with TopicReader(bootstrap, topics.results) as results:

        async def ask(command_type: str, **data: Any) -> dict[str, Any]:
            envelope = command(command_type, {"program_id": program_id, **data}, actor="ops")
            await send_commands(bootstrap, topics, [envelope])
            (first, *_) = (await results.results_for([envelope.id], timeout_s=60))[envelope.id]
            assert not first["type"].endswith("CommandRejected"), first
            return first

        async def executions(n: int, **data: Any) -> list[dict[str, Any]]:
            envelopes = [
                command(
                    "ExecuteProgram",
                    {
                        "program_id": program_id,
                        "inputs": {"question": "What is 6 plus 3?"},
                        "routing_key": f"user-{i % KEYS}",
                        **data,
                    },
                )
                for i in range(n)
            ]
            await send_commands(bootstrap, topics, envelopes)
            found = await results.results_for([e.id for e in envelopes], timeout_s=600)
            return [found[e.id][0] for e in envelopes]

        await ask("RegisterProgram", name="add", signature="question: str -> answer: str")
        await ask("UpdateProgram", instructions="Answer with the number only.")
        await ask("UpdateProgram", instructions=f"{BROKEN}: this version always fails.")
        await ask("DeployProgram", version=2)
        split = await ask("SetTrafficSplit", weights={"2": 90, "1": 10}, reason="canary v1")
        assert split["data"]["arms"] == [
            {"version": 1, "percent": 10},
            {"version": 2, "percent": 90},
        ]

        ran = await executions(N)
        assert all(r["type"] == "dspyops.result.ExecutionSucceeded" for r in ran)
        versions = Counter(r["data"]["version"] for r in ran)
        assert abs(versions[1] / N - 0.10) <= 0.02, versions
        by_key: dict[int, set[int]] = defaultdict(set)
        for r in ran:
            by_key[r["data"]["route"]["bucket"]].add(r["data"]["version"])
        assert all(len(chosen) == 1 for chosen in by_key.values())
        route = ran[0]["data"]["route"]
        assert route["alias"] == "production"
        assert route["reason"].startswith("production split v1 10 % / v2 90 %")

        guarded = await ask(
            "SetTrafficSplit",
            weights={"1": 10, "2": 80, "3": 10},
            guard={"max_error_rate": 0.5, "window": 20},
        )
        assert guarded["data"]["previous_arms"] == split["data"]["arms"]
        after = await executions(1_000)
        removed = await results.wait_for(
            lambda ms: any(m["type"] == "dspyops.result.ProgramSplitArmRemoved" for m in ms),
            timeout_s=60,
        )

    (event,) = [m for m in removed if m["type"] == "dspyops.result.ProgramSplitArmRemoved"]
    assert event["actor"] == "dspyops"
    data = event["data"]
    assert (data["alias"], data["version"], data["window"], data["max_error_rate"]) == (
        "production",
        3,
        20,
        0.5,
    )
    assert data["failed"] > 10
    assert data["arms"] == [{"version": 1, "percent": 10}, {"version": 2, "percent": 90}]
    failed = [r for r in after if r["type"] == "dspyops.result.ExecutionFailed"]
    assert failed
    assert {r["data"]["version"] for r in failed} == {3}
    # The healthy arms were never taken out and kept serving to the end.
    assert {r["data"]["version"] for r in after[-100:]} <= {1, 2}

    store = open_store(settings.effective_database_url, settings.event_store_schema)
    try:
        program = store.program(program_id)
        assert program.splits["production"]["arms"] == data["arms"]
        events = [e for e in store.events.get(program.id) if isinstance(e, Program.SplitArmRemoved)]
        assert [(e.version, e.actor) for e in events] == [(3, "dspyops")]
    finally:
        store.close()
