"""A projector process and the read tables, for tests that start, kill and compare them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dspyops.projections.read_schema import READ_MODELS

ROOT = Path(__file__).resolve().parents[2]


def projector_env(database_url: str, es: str, rs: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DSPYOPS_EVENT_STORE_SCHEMA": es,
        "DSPYOPS_READ_MODEL_SCHEMA": rs,
        # Small batches: many commits, so the kill lands between and inside them.
        "DSPYOPS_PROJECTION_BATCH_SIZE": "40",
        "DSPYOPS_PROJECTION_POLL_INTERVAL_S": "0.02",
    }


def start_projector(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dspyops.cli.main", "projector"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def position(database_url: str, rs: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [f"{rs}.projection_tracking"]).fetchone()
        if not found or found[0] is None:
            return 0
        row = conn.execute(
            sql.SQL("SELECT position FROM {}.projection_tracking").format(sql.Identifier(rs))
        ).fetchone()
        return int(row[0]) if row else 0


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def table_rows(database_url: str, schema: str) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in READ_MODELS:
            query = sql.SQL("SELECT to_jsonb(t) FROM {}.{} t ORDER BY {}").format(
                sql.Identifier(schema),
                sql.Identifier(table.name),
                sql.SQL(", ").join(map(sql.Identifier, table.key)),
            )
            rows[table.name] = [r[0] for r in conn.execute(query).fetchall()]
    return rows


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(10)
