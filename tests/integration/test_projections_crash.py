"""The projector killed with SIGKILL mid-stream and restarted yields exactly the rows of a
from-scratch rebuild: each event applied once, none lost, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

from dspyops.bootstrap import open_store
from dspyops.projections.projector import Projector, application_name
from tests.support.projector_process import (
    ROOT,
    position,
    projector_env,
    start_projector,
    stop,
    table_rows,
    wait_until,
)
from tests.support.read_story import (
    bulk_executions,
    schemas,
    seed_story,
)

EXECUTIONS = 5_000  # two events each: 10,000 events, plus the story's


def test_kill_9_mid_stream_then_restart_equals_rebuild(database_url: str, unique: str) -> None:
    es, live, fresh = f"test_es_{unique}", f"test_live_{unique}", f"test_fresh_{unique}"
    first = second = None
    with schemas(database_url, es, live, fresh):
        store = open_store(database_url, es)
        try:
            seed_story(store)
            env = projector_env(database_url, es, live)
            first = start_projector(env)
            writer = threading.Thread(
                target=bulk_executions, args=(store, "qa", EXECUTIONS), kwargs={"batch": 100}
            )
            writer.start()
            wait_until(lambda: position(database_url, live) >= 2_000, 60, "first progress")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            killed_at = position(database_url, live)
            writer.join()
            head = store.recorder.max_notification_id() or 0
            assert head >= 10_000
            assert 2_000 <= killed_at < head, "the kill must land in the middle of the stream"

            second = start_projector(env)
            wait_until(lambda: position(database_url, live) == head, 60, "catch-up")
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0
        finally:
            stop(first)
            stop(second)
            store.close()

        rebuilt = Projector(database_url, event_store_schema=es, read_schema=fresh)
        try:
            rebuilt.catch_up()
        finally:
            rebuilt.close()
        after_crash = table_rows(database_url, live)
        assert len(after_crash["executions"]) == EXECUTIONS + 10
        assert after_crash == table_rows(database_url, fresh)


def test_rebuild_command_swaps_in_identical_tables(database_url: str, unique: str) -> None:
    es, live, fresh = f"test_es_{unique}", f"test_live_{unique}", f"test_fresh_{unique}"
    with schemas(database_url, es, live, fresh):
        store = open_store(database_url, es)
        try:
            seed_story(store)
            bulk_executions(store, "sum", 300, batch=100)
        finally:
            store.close()
        for schema in (live, fresh):
            projector = Projector(database_url, event_store_schema=es, read_schema=schema)
            projector.catch_up()
            projector.close()
        # Damage the live tables: only a real rebuild-and-swap makes them equal again.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DELETE FROM {}.executions").format(sql.Identifier(live)))
        assert table_rows(database_url, live) != table_rows(database_url, fresh)
        env = projector_env(database_url, es, live)
        done = subprocess.run(
            [sys.executable, "-m", "dspyops.cli.main", "projections", "rebuild", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert json.loads(done.stdout)["events"] >= 600
        assert table_rows(database_url, live) == table_rows(database_url, fresh)
        status = subprocess.run(
            [sys.executable, "-m", "dspyops.cli.main", "projections", "status", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
            check=True,
        )
        report = json.loads(status.stdout)
        assert report["lag"] == 0
        assert report["position"] == report["head"] > 0
        with psycopg.connect(database_url, autocommit=True) as conn:
            leftover = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", [f"{live}_rebuild"]
            ).fetchone()
        assert leftover == (0,)


def test_two_projectors_never_apply_an_event_twice(database_url: str, unique: str) -> None:
    es, live, fresh = f"test_es_{unique}", f"test_live_{unique}", f"test_fresh_{unique}"
    with schemas(database_url, es, live, fresh):
        store = open_store(database_url, es)
        try:
            seed_story(store)
            bulk_executions(store, "qa", 1_000, batch=100)
            head = store.recorder.max_notification_id() or 0
        finally:
            store.close()
        runners = [
            Projector(database_url, event_store_schema=es, read_schema=live, batch_size=25)
            for _ in range(2)
        ]
        try:
            # Results, not bare threads: a projector that failed (e.g. a duplicate row
            # without the lock) must fail the test, not just print a thread warning.
            with ThreadPoolExecutor(2) as pool:
                applied = [f.result() for f in [pool.submit(r.catch_up) for r in runners]]
        finally:
            for runner in runners:
                runner.close()
        # Together they read every stored event exactly once.
        assert sum(applied) == head
        rebuilt = Projector(database_url, event_store_schema=es, read_schema=fresh)
        rebuilt.catch_up()
        rebuilt.close()
        assert table_rows(database_url, live) == table_rows(database_url, fresh)


def test_projector_survives_losing_its_connection(database_url: str, unique: str) -> None:
    es, live, fresh = f"test_es_{unique}", f"test_live_{unique}", f"test_fresh_{unique}"
    process = None
    with schemas(database_url, es, live, fresh):
        store = open_store(database_url, es)
        try:
            seed_story(store)
            process = start_projector(projector_env(database_url, es, live))
            head = store.recorder.max_notification_id() or 0
            wait_until(lambda: position(database_url, live) == head, 60, "first catch-up")
            with psycopg.connect(database_url, autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    [application_name(live)],
                ).fetchone()
            assert killed == (1,)
            bulk_executions(store, "qa", 500, batch=100)
            head = store.recorder.max_notification_id() or 0
            wait_until(lambda: position(database_url, live) == head, 60, "catch-up after loss")
            assert process.poll() is None
        finally:
            stop(process)
            store.close()
        rebuilt = Projector(database_url, event_store_schema=es, read_schema=fresh)
        rebuilt.catch_up()
        rebuilt.close()
        assert table_rows(database_url, live) == table_rows(database_url, fresh)


def test_projector_started_before_any_worker_waits_for_events(
    database_url: str, unique: str
) -> None:
    es, live = f"test_es_{unique}", f"test_live_{unique}"
    process = None
    # Only the read schema exists: no worker has created the event store yet.
    with schemas(database_url, live):
        try:
            process = start_projector(projector_env(database_url, es, live))
            # Ready once its tracking table exists: it made the event store it reads first.
            wait_until(lambda: _tracking_exists(database_url, live), 30, "projector ready")
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            store = open_store(database_url, es)
            try:
                seed_story(store)
                head = store.recorder.max_notification_id() or 0
            finally:
                store.close()
            wait_until(lambda: position(database_url, live) == head, 30, "catch-up")
        finally:
            stop(process)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(es)))


def _tracking_exists(database_url: str, rs: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [f"{rs}.projection_tracking"]).fetchone()
    return bool(found and found[0] is not None)
