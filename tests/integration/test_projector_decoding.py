"""The projector's event store decodes with orjson (json_codec.FastJSONTranscoder) to the
same events eventsourcing's own mapper makes of the same stored rows."""

from __future__ import annotations

from dspyops.bootstrap import open_store
from dspyops.projections.event_store import EventStore
from dspyops.projections.json_codec import FastJSONTranscoder
from tests.support.read_story import bulk_executions, seed_story


def test_events_decode_as_the_library_decodes_them(database_url: str, pg_schema: str) -> None:
    app = open_store(database_url, pg_schema)
    store = EventStore(database_url, pg_schema)
    try:
        seed_story(app)
        bulk_executions(app, "qa", 20, batch=10)
        assert isinstance(store.app.mapper.transcoder, FastJSONTranscoder)
        notifications = store.after(0, 10_000)
        decoded = [store.decode(n) for n in notifications]
        assert sum(e is not None for e in decoded) > 40
        for notification, event in zip(notifications, decoded, strict=True):
            if event is None:  # command bookkeeping: skipped undecoded
                continue
            expected = app.mapper.to_domain_event(notification)
            assert type(event) is type(expected)
            assert repr(vars(event)) == repr(vars(expected))
    finally:
        store.close()
        app.close()
