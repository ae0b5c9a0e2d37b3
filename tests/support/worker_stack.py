"""Shared pieces for tests that run `dspyops worker` against the real stack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from fastapi.testclient import TestClient

from dspyops.api.main import create_app
from dspyops.client import DspyopsClient, TopicsMissingError
from dspyops.projections.projector import Projector
from dspyops.settings import Settings


def stack_env(bootstrap_servers: str, database_url: str, unique: str) -> dict[str, str]:
    """Topics, consumer group and event store of their own, so tests never see each other."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "DATABASE_URL": database_url,
        "DSPYOPS_TOPIC_PREFIX": f"t{unique}.",
        "DSPYOPS_EVENT_STORE_SCHEMA": f"es_{unique}",
    }


def stored_events(database_url: str, schema: str) -> list[tuple[str, int, str]]:
    """(originator id, version, topic) of every stored event, in store order."""
    with psycopg.connect(database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = %s AND column_name = 'notification_id'",
                (schema,),
            )
        ]
        assert len(tables) == 1, tables
        rows = conn.execute(
            f'SELECT originator_id::text, originator_version, topic FROM "{schema}"."{tables[0]}" '
            "ORDER BY notification_id"
        ).fetchall()
    return [(str(a), int(b), str(c)) for a, b, c in rows]


def drop_schema(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def read_api(settings: Settings, read_schema: str) -> Iterator[TestClient]:
    """The projector caught up from `settings`' event store into `read_schema`, then the
    read API (no token) on it, in this process."""
    projector = Projector(
        settings.effective_database_url,
        event_store_schema=settings.event_store_schema,
        read_schema=read_schema,
    )
    try:
        projector.catch_up()
    finally:
        projector.close()
    update = {"read_model_schema": read_schema, "api_token": None}
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        yield client


def settings_for(env: dict[str, str]) -> Settings:
    """The Settings a worker started with `env` reads (same values, without touching os.environ)."""
    values: dict[str, str] = {}
    for name, value in env.items():
        if name in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}:
            values[name] = value
        elif name.startswith("DSPYOPS_"):
            values[name.removeprefix("DSPYOPS_").lower()] = value
    return Settings.model_validate(values)


@asynccontextmanager
async def started_client(env: dict[str, str], actor: str) -> AsyncIterator[DspyopsClient]:
    """A client on a worker's stack `env`, started once the topics exist: a worker creates
    them as it starts, so the client tries for a minute."""
    client = DspyopsClient(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=env["DSPYOPS_TOPIC_PREFIX"],
        actor=actor,
        connect_timeout_s=60,
    )
    for _ in range(60):
        try:
            await client.start()
            break
        except TopicsMissingError:
            await asyncio.sleep(1)
    try:
        yield client
    finally:
        await client.close()
