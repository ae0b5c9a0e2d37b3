"""Online evaluation set through Kafka with the worker in this process, by the CLI's
`dspyops online-eval` (a real process) and by a command: the result comes back, a judge
that cannot judge is refused at `judge`, and after the projector the read API's program
and the console's program page show the judge and the sample; `--stop` clears them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dspyops.consumers.worker import build_worker_app, prepare_topics
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.judges import GRADER, QA, TwoProfiles
from tests.support.kafka import TopicReader, command
from tests.support.optimization import send_and_wait
from tests.support.projector_process import ROOT
from tests.support.worker_stack import drop_schema, read_api, settings_for, stack_env

# Every input of an online judge comes from the execution: no reference (label).
WATCHER = "question: str, answer: str -> score: int[1, 5], rationale: str"


@pytest.fixture
def env(bootstrap_servers: str, database_url: str, unique: str) -> Iterator[dict[str, str]]:
    env = stack_env(bootstrap_servers, database_url, unique)
    yield env
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


async def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """`dspyops online-eval ... --json` as a process; its printed result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dspyops.cli.main", "online-eval", *args, "--json",
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    reply: dict[str, Any] = json.loads(out)
    return reply


def read_side(settings: Settings, read_schema: str, program_id: str) -> tuple[Any, str]:
    with read_api(settings, read_schema) as client:
        program = client.get(f"/programs/{program_id}").json()
        page = client.get(f"/ui/programs/{program_id}").text
    return program["online_evaluation"], page


async def test_online_evaluation_set_by_the_cli_shows_in_the_read_model(
    env: dict[str, str], unique: str
) -> None:
    settings = settings_for(env)
    assert settings.topic_prefix == f"t{unique}."  # never the shared default topics
    qa, watcher, grader = f"qa-{unique}", f"watcher-{unique}", f"grader-{unique}"
    await prepare_topics(settings)
    worker = build_worker_app(settings, profiles=TwoProfiles(), relay=False)
    topics = Topics(settings.topic_prefix)
    setup = [
        command("RegisterProgram", {"program_id": qa, "name": "qa", "signature": QA}),
        command(
            "RegisterProgram",
            {"program_id": watcher, "name": "w", "signature": WATCHER, "lm": "judge"},
        ),
        # Its `reference` needs a labelled example: it cannot judge executions.
        command(
            "RegisterProgram",
            {"program_id": grader, "name": "g", "signature": GRADER, "lm": "judge"},
        ),
    ]
    unfit = command("SetOnlineEvaluation", {"program_id": qa, "judge": grader})
    read_schema = f"read_{unique}"
    await worker.start()
    try:
        async with TopicReader(settings.bootstrap_servers, topics.results) as results:
            registered = await send_and_wait(settings, topics, results, *setup)
            assert {r["type"] for r in registered.values()} == {
                "dspyops.result.ProgramRegistered"
            }, registered
            refused = (await send_and_wait(settings, topics, results, unfit))[unfit.id]
        set_by_cli = await cli(
            env, qa, "--judge", watcher, "--sample-percent", "25", "--reason", "watch it"
        )
        try:
            online, page = read_side(settings, read_schema, qa)
            stopped = await cli(env, qa, "--stop")
            after_stop, page_after_stop = read_side(settings, read_schema, qa)
        finally:
            drop_schema(settings.effective_database_url, read_schema)
    finally:
        await worker.stop()

    assert refused["type"] == "dspyops.result.CommandRejected", refused
    assert {e["type"] for e in refused["data"]["errors"]} == {"judge_input_unbound"}
    assert [e["loc"] for e in refused["data"]["errors"]] == [["judge"]]
    assert set_by_cli["type"] == "dspyops.result.OnlineEvaluationSet", set_by_cli
    assert (set_by_cli["data"]["judge"], set_by_cli["data"]["sample_percent"]) == (watcher, 25.0)
    assert online == {"judge": watcher, "alias": None, "sample_percent": 25.0}
    assert f"<dt>Online evaluation</dt><dd>25 % of executions judged by {watcher}</dd>" in page
    assert stopped["type"] == "dspyops.result.OnlineEvaluationSet", stopped
    assert stopped["data"].get("judge") is None
    assert after_stop is None
    assert "<dt>Online evaluation</dt><dd>\u2013</dd>" in page_after_stop
