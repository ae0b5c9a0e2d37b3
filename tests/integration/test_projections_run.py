"""`run_projector` in-process: catches up, reports its lag, stops when told to."""

from __future__ import annotations

import threading

from dspyops.bootstrap import open_store
from dspyops.projections.run import run_projector
from dspyops.settings import Settings
from tests.support.projector_process import position, wait_until
from tests.support.read_story import schemas, seed_story


def test_run_projector_catches_up_and_stops_on_the_event(
    settings: Settings, database_url: str, unique: str
) -> None:
    es, rs = f"test_es_{unique}", f"test_rd_{unique}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        try:
            seed_story(store)
            head = store.recorder.max_notification_id() or 0
        finally:
            store.close()
        configured = settings.model_copy(
            update={
                "database_url": database_url,
                "event_store_schema": es,
                "read_model_schema": rs,
                "projection_poll_interval_s": 0.02,
            }
        )
        stop = threading.Event()
        lines: list[str] = []
        failures: list[BaseException] = []

        def run() -> None:
            try:
                run_projector(configured, stop, report=lines.append)
            except BaseException as exc:  # surfaced below, not lost in the thread
                failures.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            wait_until(lambda: position(database_url, rs) == head, 30, "catch-up")
        finally:
            stop.set()
            thread.join(15)
        assert not thread.is_alive()
        assert failures == []
        # Stopping reports the lag one last time.
        assert lines[-1] == f"projector lag: {{'position': {head}, 'head': {head}, 'lag': 0}}"
