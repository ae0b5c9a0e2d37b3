"""The relay's leader lock on the real PostgreSQL: one leader per event store (schema), and
the relays of two event stores in one database never wait for each other."""

from __future__ import annotations

from dspyops.consumers.relay import PositionStore, relay_lock_key


def test_one_relay_leads_each_event_store_and_stores_do_not_block_each_other(
    database_url: str, pg_schema: str
) -> None:
    other = f"{pg_schema}_other"
    first, second = PositionStore(database_url, pg_schema), PositionStore(database_url, pg_schema)
    elsewhere = PositionStore(database_url, other)
    try:
        assert first.try_lead()
        assert not second.try_lead()  # the same store: one leader
        assert elsewhere.try_lead()  # another store in the same database leads too
        first.release()
        assert second.try_lead()  # the lock passes on when the leader goes
    finally:
        for store in (first, second, elsewhere):
            store.release()
    assert relay_lock_key(pg_schema) != relay_lock_key(other)
    assert relay_lock_key(pg_schema) == relay_lock_key(pg_schema)
