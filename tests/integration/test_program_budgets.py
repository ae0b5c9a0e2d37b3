"""Program budgets on the real stack: the PostgreSQL spend ledger shared by two "workers",
and 200 executions in flight through Kafka against a dollar and a per-minute budget."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from dspyops.aggregates.app.budgets import refusal
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from dspyops.spend_ledger import PostgresLedger
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.lm_replies import Messages, output_fields
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.worker_process import WorkerProcess

# Every execution is one LM call billed (30, 7) tokens at (2, 8) USD per million.
USAGE = (30, 7)
PRICES = {"input_cost_per_million": 2.0, "output_cost_per_million": 8.0}
ONE = (30 * 2.0 + 7 * 8.0) / 1e6
IN_FLIGHT = 200


def test_two_ledgers_admit_exactly_the_limit_between_them(
    database_url: str, pg_schema: str
) -> None:
    ledgers = [PostgresLedger(database_url, pg_schema) for _ in range(2)]
    per_minute = {"executions_per_minute": 25}

    def admit(n: int) -> bool:
        decide = lambda spend: refusal(per_minute, "p", spend)  # noqa: E731
        refused = ledgers[n % 2].admit("p", f"e{n}", f"c{n}", decide)
        return refused is None

    try:
        with ThreadPoolExecutor(16) as pool:
            admitted = list(pool.map(admit, range(IN_FLIGHT)))
        assert sum(admitted) == 25
        # A redelivered command that was admitted is admitted again, not counted twice.
        assert admit(admitted.index(True))
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(f'SELECT count(*) FROM "{pg_schema}".program_spend').fetchone()
        assert rows == (25,)

        # Dollars: one execution ended at 0.01; each admission reserves 0.01 more.
        per_day = {"usd_per_day": 0.105}
        ledgers[0].admit("q", "first", "c-first", lambda spend: refusal(per_day, "q", spend))
        ledgers[1].settle([("first", 0.01)])

        def admit_q(n: int) -> bool:
            decide = lambda spend: refusal(per_day, "q", spend)  # noqa: E731
            return ledgers[n % 2].admit("q", f"q{n}", f"c{n}", decide) is None

        with ThreadPoolExecutor(16) as pool:
            assert sum(pool.map(admit_q, range(IN_FLIGHT))) == 9  # 0.01 + 9 * 0.01 <= 0.105
    finally:
        for ledger in ledgers:
            ledger.close()


def reply(messages: Messages) -> str:
    return chat_reply(**{name: "Paris" for name in output_fields(messages)})


async def test_200_in_flight_pass_a_budget_by_at_most_one_execution(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    budget_usd = 10.5 * ONE
    with OpenAIServer(reply, usage=USAGE, delay_s=0.05) as lm:
        profiles = {
            "default": {
                "model": "openai/test-model",
                "api_base": lm.base_url,
                "num_retries": 0,
                **PRICES,
            }
        }
        worker_env = {**env, "DSPYOPS_LM_PROFILES": json.dumps(profiles), "OPENAI_API_KEY": "k"}
        with WorkerProcess(worker_env, tmp_path / "worker.log"):
            async with TopicReader(bootstrap, topics.results) as results:
                setup = [
                    command(
                        "RegisterProgram",
                        {
                            "program_id": name,
                            "name": name,
                            "signature": "question: str -> answer: str",
                        },
                    )
                    for name in ("dollars", "minute")
                ]
                setup += [
                    command(
                        "SetBudget",
                        {"program_id": "dollars", "usd_per_day": budget_usd, "reason": "test"},
                    ),
                    command("SetBudget", {"program_id": "minute", "executions_per_minute": 25}),
                ]
                for envelope in setup:  # one at a time: the budget after the registration
                    await send_commands(bootstrap, topics, [envelope])
                    answer = await results.results_for([envelope.id], timeout_s=120)
                    (result,) = answer[envelope.id]
                    assert not result["type"].endswith("CommandRejected"), result

                ended = {
                    name: await _burst(bootstrap, topics, results, name)
                    for name in ("dollars", "minute")
                }

    succeeded = [r for r in ended["dollars"] if r["type"].endswith("ExecutionSucceeded")]
    spent = sum(r["data"]["cost_usd"] for r in succeeded)
    # Within the budget plus one execution's worth, and the budget used, not wasted.
    assert budget_usd - ONE < spent <= budget_usd + ONE, (len(succeeded), spent)
    refused = [r for r in ended["dollars"] if r["type"].endswith("CommandRejected")]
    assert len(refused) + len(succeeded) == IN_FLIGHT
    (error,) = refused[0]["data"]["errors"]
    assert (error["type"], error["ctx"]["limit"], error["ctx"]["allowed"]) == (
        "budget_exceeded",
        "usd_per_day",
        budget_usd,
    )

    minute_ok = [r for r in ended["minute"] if r["type"].endswith("ExecutionSucceeded")]
    minute_refused = [r for r in ended["minute"] if r["type"].endswith("CommandRejected")]
    assert len(minute_ok) + len(minute_refused) == IN_FLIGHT
    # The window slides: on a loaded machine the burst may take over a minute to plan,
    # and the next minute admits again. No 60 s ever held more than 25 admissions.
    with psycopg.connect(database_url) as conn:
        admitted = [
            at
            for (at,) in conn.execute(
                f'SELECT admitted_at FROM "{env["DSPYOPS_EVENT_STORE_SCHEMA"]}".program_spend'
                " WHERE program_id = 'minute' ORDER BY admitted_at"
            )
        ]
    assert len(admitted) == len(minute_ok) >= 25
    busiest = max(
        sum(1 for other in admitted if start <= other < start + timedelta(seconds=60))
        for start in admitted
    )
    assert busiest == 25
    ctx = minute_refused[0]["data"]["errors"][0]["ctx"]
    assert (ctx["limit"], ctx["spent"], ctx["allowed"]) == ("executions_per_minute", 25, 25)
    assert 0 < ctx["retry_after_s"] <= 60


async def _burst(
    bootstrap: str, topics: Topics, results: TopicReader, program_id: str
) -> list[dict[str, Any]]:
    """IN_FLIGHT executions sent at once; their terminal results."""
    envelopes = [
        command("ExecuteProgram", {"program_id": program_id, "inputs": {"question": f"q{n}"}})
        for n in range(IN_FLIGHT)
    ]
    await send_commands(bootstrap, topics, envelopes)
    answers = await results.results_for([e.id for e in envelopes], timeout_s=240)
    return [answers[e.id][0] for e in envelopes]
