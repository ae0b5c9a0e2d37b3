"""The spend ledger in PostgreSQL: one row per admitted execution of a budgeted program.

Every worker admits through the same table, so a budget holds across a consumer group.
An admission takes a transaction-scoped advisory lock on the program (admissions of one
program queue; other programs' do not), reads the program's spend, lets the domain
decide (`aggregates.app.budgets.refusal`) and inserts the reservation, all in one
transaction. Times are the database's clock (`clock_timestamp()` once the lock is held),
the same for every worker.

Programs without a budget never touch the table. Rows older than `KEEP` are deleted now
and then; the estimate then restarts from the next execution to end.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import timedelta

from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from dspyops.aggregates.app.budgets import (
    ESTIMATE_WINDOW,
    MINUTE,
    STALE_AFTER,
    BudgetExceeded,
    Decide,
    ReservedByAnother,
    Spend,
)

TABLE = "program_spend"
KEEP = timedelta(days=3)
# One settle in this many also deletes the rows older than KEEP.
PRUNE_EVERY = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    execution_id text PRIMARY KEY,
    command_id text,
    program_id text NOT NULL,
    admitted_at timestamptz NOT NULL,
    estimate_usd double precision,
    settled_at timestamptz,
    cost_usd double precision
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (program_id, admitted_at)
"""

SPEND = """
SELECT
    %(now)s::timestamptz,
    count(*) FILTER (WHERE admitted_at > %(now)s - %(minute)s),
    min(admitted_at) FILTER (WHERE admitted_at > %(now)s - %(minute)s),
    coalesce(sum(cost_usd) FILTER (WHERE settled_at IS NOT NULL AND admitted_at >= %(day)s), 0),
    coalesce(sum(estimate_usd) FILTER (WHERE settled_at IS NULL AND admitted_at >= %(day)s), 0),
    count(*) FILTER (
        WHERE settled_at IS NULL AND estimate_usd IS NULL AND admitted_at > %(now)s - %(stale)s
    ),
    (SELECT count(*) FROM (
        SELECT 1 FROM {table} WHERE program_id = %(program)s AND settled_at IS NOT NULL LIMIT 1
    ) ended),
    (SELECT max(cost_usd) FROM (
        SELECT cost_usd FROM {table}
        WHERE program_id = %(program)s AND settled_at IS NOT NULL AND cost_usd IS NOT NULL
        ORDER BY settled_at DESC LIMIT %(window)s
    ) latest)
FROM {table}
WHERE program_id = %(program)s AND admitted_at >= least(%(day)s, %(now)s - %(stale)s)
"""

UTC_DAY_START = "date_trunc('day', %(now)s AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


class PostgresLedger:
    """`SpendLedger` on PostgreSQL; connections are opened on first use only."""

    def __init__(self, database_url: str, schema: str, *, max_connections: int = 4) -> None:
        self._pool: ConnectionPool = ConnectionPool(
            database_url, min_size=0, max_size=max_connections, open=False, name="spend-ledger"
        )
        self._table = sql.Identifier(schema, TABLE)
        # Composed once: every admission of a budgeted program runs it.
        self._spend = sql.SQL(SPEND.replace("%(day)s", UTC_DAY_START)).format(table=self._table)
        self._index = sql.Identifier(f"{TABLE}_program")
        self._ready = False
        self._opening = threading.Lock()
        self._settles = itertools.count(1)

    def admit(
        self, program_id: str, execution_id: str, command_id: str, decide: Decide
    ) -> BudgetExceeded | None:
        self._open()
        with self._pool.connection() as conn, conn.transaction():
            # Two workers admitting executions of one program take turns here.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"dspyops.budget:{self._table.as_string(conn)}:{program_id}"],
            )
            reserved = conn.execute(
                sql.SQL("SELECT command_id FROM {} WHERE execution_id = %s").format(self._table),
                [execution_id],
            ).fetchone()
            if reserved is not None:
                if reserved[0] is not None and reserved[0] != command_id:
                    raise ReservedByAnother(reserved[0])
                return None  # a redelivered command: admitted once already
            # The time after the lock: a wait for it does not age the admission.
            now = conn.execute("SELECT clock_timestamp()").fetchone()
            assert now is not None
            row = conn.execute(
                self._spend,
                {
                    "now": now[0],
                    "program": program_id,
                    "minute": MINUTE,
                    "stale": STALE_AFTER,
                    "window": ESTIMATE_WINDOW,
                },
            ).fetchone()
            assert row is not None  # an aggregate query always returns one row
            spend = _spend(row)
            refused = decide(spend)
            if refused is None:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (execution_id, command_id, program_id, admitted_at,"
                        " estimate_usd) VALUES (%s, %s, %s, %s, %s)"
                    ).format(self._table),
                    [execution_id, command_id, program_id, spend.now, spend.estimate],
                )
            return refused

    def settle(self, costs: Sequence[tuple[str, float | None]]) -> None:
        self._open()
        with self._pool.connection() as conn, conn.transaction():
            with conn.cursor() as cursor:
                cursor.executemany(
                    sql.SQL(
                        "UPDATE {} SET settled_at = now(), cost_usd = %s"
                        " WHERE execution_id = %s AND settled_at IS NULL"
                    ).format(self._table),
                    [(cost, execution_id) for execution_id, cost in costs],
                )
            if next(self._settles) % PRUNE_EVERY == 0:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE admitted_at < now() - %s").format(self._table),
                    [KEEP],
                )

    def close(self) -> None:
        self._pool.close()

    def _open(self) -> None:
        if self._ready:
            return
        with self._opening:
            if self._ready:
                return
            self._pool.open(wait=True)
            with self._pool.connection() as conn, conn.transaction():
                # Two workers creating the table at once would collide in the catalog.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"dspyops.budget:create:{self._table.as_string(conn)}"],
                )
                for statement in SCHEMA.split(";"):
                    conn.execute(
                        sql.SQL(statement.strip()).format(table=self._table, index=self._index)
                    )
            self._ready = True


def _spend(row: TupleRow) -> Spend:
    now, last_minute, oldest, usd_today, reserved, unestimated, ended, estimate = row
    return Spend(
        now=now,
        last_minute=last_minute,
        oldest_in_minute=oldest,
        usd_today=float(usd_today),
        usd_reserved=float(reserved),
        unestimated_running=unestimated,
        ended=ended,
        estimate=None if estimate is None else float(estimate),
    )
