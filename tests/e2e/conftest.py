"""End-to-end fixtures: `dspyops` commands as real processes against the real Kafka and
PostgreSQL, each test module on topics, schemas and an API port of its own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from dspyops.cli.infra.kafka import metadata_answers
from dspyops.settings import get_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def e2e_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of every dspyops process a module starts; its schemas dropped after."""
    settings = get_settings()
    servers, url = settings.bootstrap_servers, settings.effective_database_url
    if not metadata_answers(servers):
        pytest.fail(f"Kafka at {servers} does not answer: run `dspyops infra up` first")
    unique = uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers,
        "DATABASE_URL": url,
        "DSPYOPS_TOPIC_PREFIX": f"e{unique}.",
        "DSPYOPS_EVENT_STORE_SCHEMA": f"e2e_es_{unique}",
        "DSPYOPS_READ_MODEL_SCHEMA": f"e2e_read_{unique}",
        "DSPYOPS_API_PORT": str(free_port()),
        "DSPYOPS_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        # Rich renders for a wide terminal, so the lines the tests look for stay whole.
        "COLUMNS": "200",
    }
    yield env
    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("DSPYOPS_EVENT_STORE_SCHEMA", "DSPYOPS_READ_MODEL_SCHEMA"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{env[name]}" CASCADE')
