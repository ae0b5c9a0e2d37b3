"""dspyops on a Kafka as production clusters run it: TLS, SCRAM users and ACLs.

A second broker of the test's own (tests/support/secure_kafka.py) with one SASL_SSL
listener and KRaft's ACL authorizer. The worker authenticates as `worker`, commands are
sent as `producer`; the broker refuses a wrong password, a plaintext client on its TLS
port and a write the ACLs do not allow, and dspyops says which in one line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from dspyops.api.kafka_check import kafka_answers
from dspyops.api.worker_group import worker_group
from dspyops.cli.console import EXIT_UNAVAILABLE
from dspyops.client import DspyopsClient, KafkaRefusedError, TopicsMissingError
from dspyops.client.security import PLAINTEXT, KafkaSecurity
from dspyops.events.commands import ExecuteProgram, RegisterProgram, TrainProgram
from dspyops.events.results import ExecutionSucceeded, ProgramRegistered
from dspyops.events.topics import Topics
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, produce
from tests.support.secure_kafka import (
    ADMIN,
    PRODUCER,
    WORKER,
    SecureKafkaBroker,
    start_secure_broker,
)
from tests.support.worker_process import REPO, WorkerProcess
from tests.support.worker_stack import drop_schema

SIGNATURE = "question: str, context: str -> answer: str"
PARTITIONS = 2


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> Iterator[SecureKafkaBroker]:
    base = tmp_path_factory.mktemp("secure-kafka")
    started = start_secure_broker(base, home=settings.home, version=settings.kafka_version)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def topics(broker: SecureKafkaBroker) -> Topics:
    """Topics made by the admin, with ACLs for the worker and the producer on them."""
    made = Topics(f"s{uuid.uuid4().hex[:8]}.")
    asyncio.run(broker.grant_dspyops(made, PARTITIONS))
    return made


def security_env(broker: SecureKafkaBroker, user: str, password_file: Path) -> dict[str, str]:
    """The variables a process of `user` reads; the password from a file (`_FILE`)."""
    password_file.write_text(broker.users[user] + "\n")
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "DSPYOPS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DSPYOPS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "DSPYOPS_KAFKA_SASL_USERNAME": user,
        "DSPYOPS_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "DSPYOPS_KAFKA_SSL_CAFILE": str(broker.certs.ca),
    }


@pytest.fixture(scope="module")
def worker_env(
    broker: SecureKafkaBroker, topics: Topics, database_url: str, tmp_path_factory
) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("secure-worker")
    env = {
        **security_env(broker, WORKER, folder / "password"),
        "DATABASE_URL": database_url,
        "DSPYOPS_TOPIC_PREFIX": topics.prefix,
        "DSPYOPS_TOPIC_PARTITIONS": str(PARTITIONS),
        "DSPYOPS_EVENT_STORE_SCHEMA": f"es_{topics.prefix.strip('.')}",
        "DSPYOPS_WORKER_METRICS_PORT": "0",
    }
    with WorkerProcess(env, folder / "worker.log") as worker:
        yield {**env, "WORKER_LOG": str(folder / "worker.log")}
        assert worker.alive(), worker.log()[-3000:]
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


def _client(broker: SecureKafkaBroker, topics: Topics, security: KafkaSecurity) -> DspyopsClient:
    return DspyopsClient(
        broker.bootstrap_servers,
        topic_prefix=topics.prefix,
        actor="alice@example.com",
        security=security,
        connect_timeout_s=20,
    )


async def test_the_command_loop_runs_over_sasl_ssl_with_acls(
    broker: SecureKafkaBroker, topics: Topics, worker_env: dict[str, str]
) -> None:
    program_id = f"qa-{uuid.uuid4().hex[:8]}"
    async with _client(broker, topics, broker.security_for(PRODUCER)) as client:
        registered = await client.send(
            RegisterProgram(program_id=program_id, name="QA", signature=SIGNATURE, lm="offline"),
            timeout_s=120,
        )
        assert registered.expect(ProgramRegistered).program_id == program_id
        executed = await client.send(
            ExecuteProgram(program_id=program_id, inputs={"question": "q?", "context": "c."}),
            timeout_s=60,
        )
        assert executed.expect(ExecutionSucceeded).outputs["answer"]
    # The relay, as the worker principal, published the stored events.
    async with TopicReader(
        broker.bootstrap_servers, topics.events, broker.security_for(ADMIN)
    ) as events:
        await events.wait_for(lambda ms: any(m.get("subject") == program_id for m in ms))
    assert broker.users[WORKER] not in worker_log(worker_env)
    # The health page's view of that worker, over the same SASL_SSL settings: its group
    # described (DESCRIBE comes with the group's READ) and its lag per command topic.
    group = f"{topics.prefix}worker"
    found = await worker_group(broker.bootstrap_servers, broker.security_for(WORKER), group)
    assert found is not None
    assert (found.state, found.status, len(found.members)) == ("Stable", "running", 1)
    assert {t.topic for t in found.lags} <= set(topics.commands)
    # A principal without the group's ACL is refused, a wrong password too: unknown.
    for refused in (
        broker.security_for(PRODUCER),
        broker.security_for(WORKER, password="not-the-password"),
    ):
        assert await worker_group(broker.bootstrap_servers, refused, group) is None


def worker_log(env: dict[str, str]) -> str:
    return Path(env["WORKER_LOG"]).read_text()


async def test_a_wrong_password_is_refused_in_one_line(
    broker: SecureKafkaBroker, topics: Topics
) -> None:
    client = _client(broker, topics, broker.security_for(PRODUCER, password="not-the-password"))
    with pytest.raises(KafkaRefusedError) as caught:
        await client.start()
    assert str(caught.value) == (
        f"Kafka at {broker.bootstrap_servers} refused the credentials "
        "(SASL_SSL, SCRAM-SHA-512 as 'producer'): wrong user name or password"
    )
    assert not await kafka_answers(
        broker.bootstrap_servers, broker.security_for(WORKER, password="nope")
    )
    assert await kafka_answers(broker.bootstrap_servers, broker.security_for(WORKER))


async def test_a_plaintext_client_on_the_tls_port_is_refused(
    broker: SecureKafkaBroker, topics: Topics
) -> None:
    with pytest.raises(KafkaRefusedError) as caught:
        await _client(broker, topics, PLAINTEXT).start()
    assert str(caught.value) == (
        f"Kafka at {broker.bootstrap_servers} closed the connection during a PLAINTEXT "
        "handshake: that listener expects another security protocol"
    )


async def test_a_client_that_does_not_trust_the_ca_is_told_so(
    broker: SecureKafkaBroker, topics: Topics
) -> None:
    untrusting = broker.security_for(PRODUCER).model_copy(update={"cafile": None})
    with pytest.raises(KafkaRefusedError, match=r"TLS certificate of Kafka at \S+ is not trusted"):
        await _client(broker, topics, untrusting).start()


async def test_writes_the_acls_do_not_allow_are_refused(
    broker: SecureKafkaBroker, topics: Topics
) -> None:
    # The producer may write commands only: not results.
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(
            broker.bootstrap_servers, [(topics.results, None, b"{}")], broker.security_for(PRODUCER)
        )
    # Where the producer may read results but not write commands, the client says so.
    readonly = Topics(f"r{uuid.uuid4().hex[:8]}.")
    await broker.grant_dspyops(readonly, PARTITIONS, producer_writes_commands=False)
    async with _client(broker, readonly, broker.security_for(PRODUCER)) as client:
        with pytest.raises(KafkaRefusedError) as caught:
            await client.publish(client.envelope("TrainProgram", {"program_id": "qa"}))
    assert str(caught.value) == (
        f"Kafka refused User:producer to write to {readonly.programs} "
        "(TopicAuthorizationFailedError): an ACL must allow it"
    )


async def test_a_client_that_may_not_read_results_is_told_so(
    broker: SecureKafkaBroker, topics: Topics
) -> None:
    # Without any ACL on the results topic, it is invisible: "missing, or no ACL".
    writeonly = Topics(f"w{uuid.uuid4().hex[:8]}.")
    await broker.grant_dspyops(writeonly, PARTITIONS, producer_reads_results=False)
    client = _client(broker, writeonly, broker.security_for(PRODUCER))
    with pytest.raises(TopicsMissingError, match=r"or no ACL lets User:producer read it"):
        await client.start()
    # The worker sees the results topic (it may write it) but may not read it: the
    # client's reader is refused, and the next command is told why at once.
    async with _client(broker, topics, broker.security_for(WORKER)) as client:
        for _ in range(100):
            if client._failure is not None:  # the reader's first fetch was refused
                break
            await asyncio.sleep(0.1)
        with pytest.raises(KafkaRefusedError) as caught:
            await client.send(TrainProgram(program_id="qa"), timeout_s=5)
    assert str(caught.value) == (
        f"Kafka refused User:worker to read {topics.results} "
        "(TopicAuthorizationFailedError): an ACL must allow it"
    )


def _cli_send(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", "send", "TrainProgram", "--data", "-"],
        input='{"program_id": "qa"}',
        env={**os.environ, **env, "COLUMNS": "300"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_says_why_in_one_line(
    broker: SecureKafkaBroker, topics: Topics, tmp_path: Path
) -> None:
    env = security_env(broker, PRODUCER, tmp_path / "password")
    env["DSPYOPS_TOPIC_PREFIX"] = topics.prefix
    (tmp_path / "password").write_text("wrong\n")
    wrong = _cli_send(env)
    plain = _cli_send(
        {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "DSPYOPS_TOPIC_PREFIX": topics.prefix}
    )
    for done, expected in [
        (wrong, "refused the credentials (SASL_SSL, SCRAM-SHA-512 as 'producer')"),
        (plain, "closed the connection during a PLAINTEXT handshake"),
    ]:
        assert done.returncode == EXIT_UNAVAILABLE, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[0].startswith(f"error: Kafka at {broker.bootstrap_servers} "), lines
        assert expected in lines[0]
        assert lines[1:] == [
            "hint: check DSPYOPS_KAFKA_SECURITY_PROTOCOL, DSPYOPS_KAFKA_SASL_* and "
            "DSPYOPS_KAFKA_SSL_* (README: Connecting to a secured Kafka)"
        ]
        assert "Traceback" not in done.stderr
