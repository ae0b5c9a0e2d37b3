"""The real PostgreSQL: a psycopg 3 round trip and eventsourcing's PostgreSQL module."""

from __future__ import annotations

from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg.types.json import Jsonb

from dspyops.aggregates.app.persistence import eventsourcing_env


def test_psycopg_round_trip(database_url: str, pg_schema: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(f'CREATE TABLE "{pg_schema}".notes (id int PRIMARY KEY, body jsonb)')
        conn.execute(
            f'INSERT INTO "{pg_schema}".notes VALUES (%s, %s)',
            (1, Jsonb({"text": "héllo", "n": 3})),
        )
        conn.commit()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f'SELECT body FROM "{pg_schema}".notes WHERE id = 1').fetchone()
    assert row == ({"text": "héllo", "n": 3},)


class Note(Aggregate):
    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text

    @event("Edited")
    def edit(self, text: str) -> None:
        self.text = text


def test_eventsourcing_postgres_creates_tables_and_stores_events(
    database_url: str, pg_schema: str
) -> None:
    env = eventsourcing_env(database_url, schema=pg_schema)
    writer: Application[UUID] = Application(env=env)
    note = Note("first")
    note.edit("second")
    writer.save(note)

    # A second application instance reads what the first one stored.
    reader: Application[UUID] = Application(env=env)
    copy: Note = reader.repository.get(note.id)
    assert copy.text == "second"
    assert copy.version == 2
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (pg_schema,),
            )
        }
    assert tables, "eventsourcing created no tables"
    notifications = reader.notification_log.select(start=1, limit=10)
    assert [n.originator_version for n in notifications] == [1, 2]
