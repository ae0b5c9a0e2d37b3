"""An LM that echoes secrets: none of them leaves the worker, whatever fails and wherever.

The operator's drill, on the real stack: a worker process (Kafka, PostgreSQL, real
HTTP to local OpenAI-compatible servers) whose LM profiles read one API key from an
environment variable. Each profile fails another way: HTTP 401, 403, 429 and 500
answers whose body echoes the key received, the server's own address and the key's
variable name; a closed port; a host name that does not resolve; a server that hangs
past the profile's timeout. Then every byte the system keeps or publishes is searched
for the key (and its first and last 8 characters), every endpoint URL, host and
host:port, and the variable's name: the results and events topics, every table of the
event store and read model schemas, and the worker's log.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from psycopg import sql

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from dspyops.projections.projector import Projector
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import drop_schema, settings_for, stack_env

SIGNATURE = "question: str -> answer: str"
EXAMPLES = [{"question": f"What is {n} plus 1?", "answer": str(n + 1)} for n in range(10)]
# The error code each profile's failure must still carry.
EXPECTED_CODES = {
    "auth": "lm_error",
    "forbidden": "lm_error",
    "limited": "lm_rate_limited",
    "broken": "lm_error",
    "refused": "lm_error",
    "nxdomain": "lm_error",
    "hanging": "lm_timeout",
}
FAILING_STATUS = {"auth": 401, "forbidden": 403, "limited": 429, "broken": 500}
NO_SUCH_HOST = "dspyops-no-such-host.invalid"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Drill:
    """The LM servers, profiles and secrets of one run."""

    def __init__(self, unique: str, stack: ExitStack) -> None:
        self.key_env = f"DSPYOPS_DRILL_KEY_{unique.upper()}"
        self.key = f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.endpoints: dict[str, str] = {}
        # The servers that answer (with a failure, or too late), to check what they got.
        self.servers: dict[str, OpenAIServer] = {}
        # One loopback address per server, so each host is a string of its own.
        for number, (name, status) in enumerate(FAILING_STATUS.items(), start=21):
            server = OpenAIServer(
                _never_called,
                fail_every=1,
                fail_status=status,
                echo=self.key_env,
                host=f"127.0.0.{number}",
            )
            self.servers[name] = stack.enter_context(server)
            self.endpoints[name] = server.base_url
        hanging = OpenAIServer(_never_called, hang_s=30, host="127.0.0.29")
        self.servers["hanging"] = stack.enter_context(hanging)
        self.endpoints["hanging"] = hanging.base_url
        self.endpoints["refused"] = f"http://127.0.0.1:{_closed_port()}/v1"
        self.endpoints["nxdomain"] = f"http://{NO_SUCH_HOST}:8123/v1"

    def profiles(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "model": "openai/test-model",
                "api_base": url,
                "api_key_env": self.key_env,
                "num_retries": 0,
                "timeout_s": 0.5 if name == "hanging" else 2,
            }
            for name, url in self.endpoints.items()
        }

    def secrets(self) -> set[str]:
        found = {self.key, self.key[:8], self.key[-8:], self.key_env}
        for url in self.endpoints.values():
            address = url.removeprefix("http://").removesuffix("/v1")
            found |= {url, address, address.rsplit(":", 1)[0]}
        return found


def _never_called(messages: list[dict[str, Any]]) -> str:
    return chat_reply(answer="unreachable")


@pytest.fixture
def settings_and_env(
    bootstrap_servers: str, database_url: str, unique: str
) -> Iterator[tuple[Settings, dict[str, str]]]:
    env = stack_env(bootstrap_servers, database_url, unique)
    read_schema = f"rd_{unique}"
    env["DSPYOPS_READ_MODEL_SCHEMA"] = read_schema
    yield settings_for(env), env
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])
    drop_schema(database_url, read_schema)


async def test_no_lm_failure_leaks_a_secret(
    settings_and_env: tuple[Settings, dict[str, str]], tmp_path: Path, unique: str
) -> None:
    settings, env = settings_and_env
    topics = Topics(settings.topic_prefix)
    log_path = tmp_path / "worker.log"
    with ExitStack() as stack:
        drill = Drill(unique, stack)
        env = {
            **env,
            "DSPYOPS_LM_PROFILES": json.dumps(drill.profiles()),
            drill.key_env: drill.key,
        }
        registers = [
            command(
                "RegisterProgram",
                {
                    "program_id": f"p-{name}-{unique}",
                    "name": name,
                    "signature": SIGNATURE,
                    "lm": name,
                },
            )
            for name in EXPECTED_CODES
        ]
        dataset = command(
            "RegisterDataset",
            {
                "dataset_id": f"d-{unique}",
                "name": "sums",
                "examples": EXAMPLES,
                "dev_fraction": 0.3,
            },
        )
        executions = {
            name: command(
                "ExecuteProgram",
                {"program_id": f"p-{name}-{unique}", "inputs": {"question": "What is 1 plus 1?"}},
            )
            for name in EXPECTED_CODES
        }
        evaluate = command(
            "EvaluateProgram", {"program_id": f"p-auth-{unique}", "dataset_id": f"d-{unique}"}
        )
        # max_errors 1: the first failed LM call ends the compile with that LM error.
        optimize = command(
            "OptimizeProgram",
            {
                "program_id": f"p-auth-{unique}",
                "dataset_id": f"d-{unique}",
                "optimizer": "BootstrapFewShot",
                "config": {"max_errors": 1, "time_limit_s": 60},
            },
        )
        await ensure_topics(
            settings.bootstrap_servers, topics.all, partitions=settings.topic_partitions
        )
        with WorkerProcess(env, log_path) as worker:
            async with TopicReader(settings.bootstrap_servers, topics.results) as results:
                await send_commands(settings.bootstrap_servers, topics, [*registers, dataset])
                await results.results_for([c.id for c in [*registers, dataset]], timeout_s=90)
                runs = [*executions.values(), evaluate, optimize]
                await send_commands(settings.bootstrap_servers, topics, runs)
                found = await results.results_for([c.id for c in runs], timeout_s=60)
            await _wait_for_relay(settings, topics)
            assert worker.alive(), worker.log()

    for name, execute in executions.items():
        [result] = found[execute.id]
        assert result["type"] == "dspyops.result.ExecutionFailed", (name, result)
        assert result["data"]["error"]["code"] == EXPECTED_CODES[name], (name, result)
    [evaluated] = found[evaluate.id]
    assert evaluated["type"].startswith("dspyops.result.Evaluation"), evaluated
    assert evaluated["type"] == "dspyops.result.EvaluationFailed", evaluated
    assert evaluated["data"]["error"]["code"] == "lm_error", evaluated
    [optimized] = found[optimize.id]
    assert optimized["type"] == "dspyops.result.OptimizationFailed", optimized
    assert optimized["data"]["error"]["code"] == "lm_error", optimized
    # Each failure came from the server itself: it got a request carrying the key, and
    # (save the hanging one, which fails by timing out) answered it with its failure.
    for name, server in drill.servers.items():
        authorizations = [h.get("authorization") for h in server.headers]
        assert server.calls >= 1, (name, server.calls)
        assert f"Bearer {drill.key}" in authorizations, (name, len(authorizations))
        if name in FAILING_STATUS:
            assert server.failed >= 1, (name, server.calls, server.failed)

    _project(settings)
    places = {
        "results topic": await _topic_text(settings.bootstrap_servers, topics.results),
        "events topic": await _topic_text(settings.bootstrap_servers, topics.events),
        **_schema_text(settings.effective_database_url, settings.event_store_schema),
        **_schema_text(settings.effective_database_url, settings.read_model_schema),
        "worker log": log_path.read_text(errors="replace"),
    }
    leaks = {
        (secret, place): text.count(secret)
        for secret in sorted(drill.secrets())
        for place, text in places.items()
        if secret in text
    }
    assert not leaks, _leak_report(leaks, places)


async def _wait_for_relay(settings: Settings, topics: Topics) -> None:
    """Until the events topic holds every stored event (the relay runs in the worker)."""
    stored = _stored_count(settings)
    async with TopicReader(settings.bootstrap_servers, topics.events) as events:
        await events.wait_for(lambda messages: len(messages) >= stored, timeout_s=30)


def _stored_count(settings: Settings) -> int:
    schema = settings.event_store_schema
    with psycopg.connect(settings.effective_database_url) as conn:
        [table] = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = %s AND column_name = 'notification_id'",
                (schema,),
            )
        ]
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _project(settings: Settings) -> None:
    projector = Projector(
        settings.effective_database_url,
        event_store_schema=settings.event_store_schema,
        read_schema=settings.read_model_schema,
    )
    try:
        assert projector.catch_up() > 0
    finally:
        projector.close()


async def _topic_text(bootstrap: str, topic: str) -> str:
    """Every key and value on `topic`, raw bytes decoded leniently, one per line: read up
    to the end offsets it has now (the worker has stopped: nothing more comes)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    chunks: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():  # without a group: every partition, once known
            assert time.monotonic() < deadline, f"no partitions of {topic}"
            await asyncio.sleep(0.05)
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                chunks.extend(r.key or b"" for r in records)
                chunks.extend(r.value or b"" for r in records)
    finally:
        await consumer.stop()
    assert chunks, f"nothing on {topic}"
    return b"\n".join(chunks).decode("utf-8", "replace")


def _schema_text(database_url: str, schema: str) -> dict[str, str]:
    """Every row of every table in `schema` as text; bytea columns decoded as UTF-8."""
    found: dict[str, str] = {}
    with psycopg.connect(database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        assert tables, f"no tables in {schema}"
        for table in tables:
            name = sql.Identifier(schema, table)
            rows = conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(name)).fetchall()
            binary = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s AND data_type = 'bytea'",
                    (schema, table),
                )
            ]
            decoded: list[str] = []
            for column in binary:
                query = sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), name)
                decoded += [
                    bytes(v).decode("utf-8", "replace") for (v,) in conn.execute(query) if v
                ]
            found[f"{schema}.{table}"] = "\n".join([r[0] for r in rows] + decoded)
    return found


def _leak_report(leaks: dict[tuple[str, str], int], places: dict[str, str]) -> str:
    lines = [f"{count} x {secret!r} in {place}" for (secret, place), count in leaks.items()]
    for (secret, place), _ in list(leaks.items())[:5]:
        text = places[place]
        at = text.index(secret)
        lines.append(f"  e.g. in {place}: ...{text[max(at - 150, 0) : at + 100]!r}...")
    return "secrets leaked:\n" + "\n".join(lines)
