"""The projector's batches: a batch commits without waiting for the disk (its
transaction only)."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import Connection

from dspyops.bootstrap import open_store
from dspyops.projections import tracking
from dspyops.projections.projector import Projector
from tests.support.read_story import schemas, seed_story


def test_a_batch_commits_without_waiting_for_the_disk_its_transaction_only(
    database_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    es, live = f"test_es_{unique}", f"test_live_{unique}"
    with schemas(database_url, es, live):
        store = open_store(database_url, es)
        try:
            seed_story(store)
        finally:
            store.close()
        seen: list[str] = []
        write_position = tracking.write_position

        def spy(conn: Connection[Any], schema: str, position: int) -> None:
            row = conn.execute("SHOW synchronous_commit").fetchone()
            assert row is not None
            seen.append(row[0])
            write_position(conn, schema, position)

        monkeypatch.setattr(tracking, "write_position", spy)
        projector = Projector(database_url, event_store_schema=es, read_schema=live)
        try:
            projector.conn.execute("SET synchronous_commit = on")  # the session's own
            projector.conn.commit()
            assert projector.run_batch() > 0
            after = projector.conn.execute("SHOW synchronous_commit").fetchone()
            projector.conn.commit()
        finally:
            projector.close()
        assert seen == ["off"]
        assert after == ("on",)
