"""Integration fixtures: the real Kafka broker and PostgreSQL from `dspyops infra up`.

They fail, never skip, when the services do not answer: a skipped integration suite
would let CI pass without ever touching Kafka or PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from dspyops.cli.infra.kafka import metadata_answers
from dspyops.settings import Settings, get_settings
from tests.support.worker_stack import drop_schema, stack_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def bootstrap_servers(settings: Settings) -> str:
    servers = settings.bootstrap_servers
    if not metadata_answers(servers):
        pytest.fail(f"Kafka at {servers} does not answer: run `dspyops infra up` first")
    return servers


@pytest.fixture(scope="session")
def database_url(settings: Settings) -> str:
    url = settings.effective_database_url
    try:
        with psycopg.connect(url, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at {url} does not answer ({exc}): run `dspyops infra up` first")
    return url


@pytest.fixture
def unique() -> str:
    """A short unique suffix so reruns against the same stack never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def pg_schema(database_url: str, unique: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards."""
    schema = f"test_{unique}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def env(bootstrap_servers: str, database_url: str, unique: str) -> Iterator[dict[str, str]]:
    """A worker's environment with topics, consumer group and event store of the test's own
    (`stack_env`); the event store and a `read_<unique>` read schema are dropped after."""
    values = stack_env(bootstrap_servers, database_url, unique)
    yield values
    drop_schema(database_url, values["DSPYOPS_EVENT_STORE_SCHEMA"])
    drop_schema(database_url, f"read_{unique}")
