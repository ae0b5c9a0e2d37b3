"""Every query the API runs: plain async functions over the read tables.

Each takes a connection, the read schema and its parameters, and returns rows (dicts) or
None when there is no such row; the routes validate parameters, call these and shape the
answers. Column lists come from `projections.read_schema`. Every list view goes through
`_page`: its filters, the keyset after the cursor, `limit + 1` rows newest first.

This module is long because it is every query of the API in one place, on purpose; it
would split by resource (programs, executions, runs) before growing much further.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from dspyops.api import pagination
from dspyops.projections.lag import ProjectorStatus, projector_status, read_lag
from dspyops.projections.read_schema import (
    AUDIT_LOG,
    CORPORA,
    DATASET_EXAMPLES,
    DATASETS,
    EXECUTIONS,
    FEEDBACK,
    PROGRAM_VERSIONS,
    PROGRAMS,
    RUNS,
    SERVING_CHANGES,
    Table,
)

Row = dict[str, Any]
# A WHERE condition (SQL text) with its one parameter.
Condition = tuple[str, Any]

# `id` is the aggregate's uuid, internal to the read side; the ids clients use are columns.
PROGRAM_COLUMNS = PROGRAMS.without("id")
# A version without its input/output JSON Schemas, which the schema view alone returns;
# a version's list entry leaves out its saved DSPy state too (demos; it can be large).
SCHEMAS = ("input_schema", "output_schema")
VERSION_COLUMNS = PROGRAM_VERSIONS.without(*SCHEMAS)
VERSION_LIST_COLUMNS = PROGRAM_VERSIONS.without("state", *SCHEMAS)
DATASET_COLUMNS = DATASETS.without("id")
DATASET_EXAMPLE_COLUMNS = DATASET_EXAMPLES.without("position")
CORPUS_COLUMNS = CORPORA.without("id")
# A list leaves the trace out (it can be large); one execution's view has it.
EXECUTION_COLUMNS = EXECUTIONS.without("id", "trace")
EXECUTION_DETAIL_COLUMNS = EXECUTIONS.without("id")
SERVING_COLUMNS = SERVING_CHANGES.without("program_id")
FEEDBACK_COLUMNS = FEEDBACK.without("execution_id", "program_id", "version", "position")

STATS = sql.SQL(
    "count(*) AS count, "
    "count(*) FILTER (WHERE status = 'succeeded') AS succeeded, "
    "count(*) FILTER (WHERE status = 'failed') AS failed, "
    "count(*) FILTER (WHERE status = 'succeeded')::float8 "
    "  / nullif(count(*) FILTER (WHERE status <> 'requested'), 0) AS success_rate, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms, "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms, "
    "coalesce(sum(total_tokens), 0)::float8 "
    "  / nullif(count(*) FILTER (WHERE status <> 'requested'), 0) AS tokens_per_execution, "
    # Known costs summed (NULL when none is known); `unpriced` counts the ended
    # executions whose model has no known price, so a partial sum says so.
    "sum(cost_usd) AS cost_usd, "
    "count(*) FILTER (WHERE status <> 'requested' AND cost_usd IS NULL) AS unpriced, "
    # Feedback on these executions (FEEDBACK_PER_EXECUTION, joined one row each): how
    # much, how much of it scored, and the mean of the scores given.
    "coalesce(sum(fb.n), 0)::bigint AS feedback_count, "
    "coalesce(sum(fb.scored), 0)::bigint AS feedback_scored, "
    "sum(fb.score_sum) / nullif(sum(fb.scored), 0) AS feedback_score_mean, "
    # What api/arms.py needs for intervals: spreads of latency and of feedback scores
    # (the sample variance of the scores, from their sum and sum of squares).
    "count(latency_ms) AS latency_n, "
    "avg(latency_ms) AS latency_mean_ms, "
    "var_samp(latency_ms) AS latency_var, "
    # Clamped at 0: with equal scores, rounding can leave the difference a hair below.
    "greatest((sum(fb.score_sq) - sum(fb.score_sum) ^ 2 / nullif(sum(fb.scored), 0)) "
    "  / nullif(sum(fb.scored) - 1, 0), 0) AS feedback_score_var"
)
# At most one row per execution (the program's feedback grouped by execution, its one
# parameter the program id), so `count(*)` above still counts executions. Grouped once
# and hash-joined: a lookup per execution cost 100,000 index scans on a program that
# had that many executions (bench/bench_console.py).
FEEDBACK_PER_EXECUTION = sql.SQL(
    "LEFT JOIN (SELECT f.execution_id, count(*) AS n, count(f.score) AS scored, "
    "sum(f.score) AS score_sum, sum(f.score * f.score) AS score_sq "
    "FROM {} f WHERE f.program_id = %s GROUP BY f.execution_id) fb "
    "ON fb.execution_id = e.execution_id"
)


# Memory for the statistics' sorts, for that one statement (SET LOCAL): 100,000
# executions sort in about 10.5 MB; more spill to disk rather than hold more per query.
STATS_WORK_MEM = "16MB"


class PageRows(NamedTuple):
    items: list[Row]
    next_cursor: str | None

    def as_page(self, shape: Callable[[Row], Row] | None = None) -> dict[str, Any]:
        items = self.items if shape is None else [shape(row) for row in self.items]
        return {"items": items, "next_cursor": self.next_cursor}


# --- programs and versions -------------------------------------------------------------


async def programs(
    conn: AsyncConnection,
    schema: str,
    *,
    status: str | None,
    name: str | None,
    limit: int,
    cursor: str | None,
) -> PageRows:
    conditions = _given(("status", "=", status))
    if name:
        conditions.append(("name ILIKE %s ESCAPE '\\'", f"%{_like_escape(name)}%"))
    return await _page(conn, schema, PROGRAMS, PROGRAM_COLUMNS, conditions, limit, cursor)


async def program(conn: AsyncConnection, schema: str, program_id: str) -> Row | None:
    return await _one(conn, schema, PROGRAMS, PROGRAM_COLUMNS, program_id=program_id)


async def versions(conn: AsyncConnection, schema: str, program_id: str) -> list[Row]:
    return await _fetch_all(
        conn,
        sql.SQL("SELECT {} FROM {} WHERE program_id = %s ORDER BY number").format(
            _columns(VERSION_LIST_COLUMNS), _table(schema, PROGRAM_VERSIONS)
        ),
        [program_id],
    )


async def version(conn: AsyncConnection, schema: str, program_id: str, number: int) -> Row | None:
    return await _one(
        conn, schema, PROGRAM_VERSIONS, VERSION_COLUMNS, program_id=program_id, number=number
    )


async def version_schemas(
    conn: AsyncConnection, schema: str, program_id: str, number: int
) -> Row | None:
    """The version's stored `input_schema` and `output_schema` (None if not compilable)."""
    return await _one(conn, schema, PROGRAM_VERSIONS, SCHEMAS, program_id=program_id, number=number)


async def serving_at(
    conn: AsyncConnection, schema: str, program_id: str, at: datetime
) -> Row | None:
    """The program's last serving change at or before `at` (None: none yet), which holds
    the state that served at that instant. Last in store order: each row's state follows
    from the one before it by position, and clocks of different workers may disagree."""
    rows = await _fetch_all(
        conn,
        sql.SQL(
            "SELECT {} FROM {} WHERE program_id = %s AND occurred_at <= %s "
            "ORDER BY position DESC LIMIT 1"
        ).format(_columns(SERVING_COLUMNS), _table(schema, SERVING_CHANGES)),
        [program_id, at],
    )
    return rows[0] if rows else None


async def serving_history(
    conn: AsyncConnection, schema: str, program_id: str, *, limit: int, cursor: str | None
) -> PageRows:
    conditions = _given(("program_id", "=", program_id))
    return await _page(conn, schema, SERVING_CHANGES, SERVING_COLUMNS, conditions, limit, cursor)


# --- executions ------------------------------------------------------------------------


async def executions(
    conn: AsyncConnection,
    schema: str,
    program_id: str,
    *,
    status: str | None,
    version: int | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    min_score: float | None = None,
    max_score: float | None = None,
) -> PageRows:
    conditions = _given(
        ("program_id", "=", program_id),
        ("status", "=", status),
        ("version", "=", version),
        ("requested_at", ">=", since),
        ("requested_at", "<", until),
    )
    for op, bound in ((">=", min_score), ("<=", max_score)):
        if bound is not None:
            conditions.append((_latest_score(schema, op), bound))
    return await _page(conn, schema, EXECUTIONS, EXECUTION_COLUMNS, conditions, limit, cursor)


@functools.cache
def _latest_score(schema: str, op: str) -> str:
    """`latest score op %s`: the score of the execution's latest feedback that gave one
    (no such feedback: no match), an index lookup on the feedback table's key."""
    return (
        sql.SQL(
            "(SELECT f.score FROM {} f WHERE f.execution_id = {}.execution_id "
            "AND f.score IS NOT NULL ORDER BY f.number DESC LIMIT 1) {} %s"
        )
        .format(_table(schema, FEEDBACK), _table(schema, EXECUTIONS), sql.SQL(op))
        .as_string()
    )


async def execution(conn: AsyncConnection, schema: str, execution_id: str) -> Row | None:
    return await _one(conn, schema, EXECUTIONS, EXECUTION_DETAIL_COLUMNS, execution_id=execution_id)


async def feedback(conn: AsyncConnection, schema: str, execution_id: str) -> list[Row]:
    """An execution's feedback, in the order it was recorded."""
    return await _fetch_all(
        conn,
        sql.SQL("SELECT {} FROM {} WHERE execution_id = %s ORDER BY number").format(
            _columns(FEEDBACK_COLUMNS), _table(schema, FEEDBACK)
        ),
        [execution_id],
    )


async def execution_stats(
    conn: AsyncConnection,
    schema: str,
    program_id: str,
    *,
    bucket: str,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, list[Row]]:
    """STATS over a program's executions: `overall` (no row when there are none),
    `by_version` and `by_time` (per `bucket`); each row's group is in `k`. The feedback
    counted is that on the executions counted, whenever it was given.

    One statement with three grouping sets: the executions are read (and their feedback
    joined) once, not once per grouping; it is what a program's console page waits for."""
    conditions = _given(
        ("program_id", "=", program_id), ("requested_at", ">=", since), ("requested_at", "<", until)
    )
    where = sql.SQL(" AND ").join(sql.SQL(condition) for condition, _ in conditions)
    params = [param for _, param in conditions]
    async with conn.transaction():
        # The grouping sets sort every execution: at PostgreSQL's default 4 MB a program
        # with 100,000 executions sorted on disk (bench/bench_console.py).
        await conn.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(STATS_WORK_MEM)))
        rows = await _stats_rows(conn, schema, where, [bucket, *params, program_id])
    return {
        "overall": [{**r, "k": 1} for r in rows if r["g"] == 3 and r["count"]],
        "by_version": [{**r, "k": r["version"]} for r in rows if r["g"] == 1],
        "by_time": [{**r, "k": r["bucket"]} for r in rows if r["g"] == 2],
    }


async def _stats_rows(
    conn: AsyncConnection, schema: str, where: sql.Composable, params: list[Any]
) -> list[Row]:
    return await _fetch_all(
        conn,
        sql.SQL(
            # grouping(): 3 for the overall row, 1 by version, 2 by time bucket.
            "SELECT grouping(e.version, e.bucket) AS g, e.version, e.bucket, {stats} "
            "FROM (SELECT *, date_trunc(%s, requested_at) AS bucket FROM {t} WHERE {w}) AS e "
            "{fb} GROUP BY GROUPING SETS ((), (e.version), (e.bucket)) ORDER BY 1, 2, 3"
        ).format(
            stats=STATS,
            t=_table(schema, EXECUTIONS),
            fb=FEEDBACK_PER_EXECUTION.format(_table(schema, FEEDBACK)),
            w=where,
        ),
        params,
    )


# --- datasets, corpora, runs, audit trail -------------------------------------------------------


async def datasets(
    conn: AsyncConnection, schema: str, *, limit: int, cursor: str | None
) -> PageRows:
    return await _page(conn, schema, DATASETS, DATASET_COLUMNS, [], limit, cursor)


async def dataset(conn: AsyncConnection, schema: str, dataset_id: str) -> Row | None:
    return await _one(conn, schema, DATASETS, DATASET_COLUMNS, dataset_id=dataset_id)


async def dataset_examples(
    conn: AsyncConnection,
    schema: str,
    dataset_id: str,
    *,
    split: str | None,
    version: int | None,
    limit: int,
    cursor: str | None,
) -> PageRows:
    """A dataset's examples in the order they were added (by `number`, the cursor the last
    number seen): of one split, and as of one version of the dataset, when given."""
    conditions = _given(
        ("dataset_id", "=", dataset_id),
        ("split", "=", split),
        ("dataset_version", "<=", version),
        ("number", ">", None if cursor is None else pagination.decode(cursor)),
    )
    where = sql.SQL(" AND ").join(sql.SQL(condition) for condition, _ in conditions)
    rows = await _fetch_all(
        conn,
        sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY number LIMIT %s").format(
            _columns(DATASET_EXAMPLE_COLUMNS), _table(schema, DATASET_EXAMPLES), where
        ),
        [*(param for _, param in conditions), limit + 1],
    )
    items = rows[:limit]
    more = len(rows) > limit
    return PageRows(items, pagination.encode(items[-1]["number"]) if more else None)


async def corpora(
    conn: AsyncConnection, schema: str, *, limit: int, cursor: str | None
) -> PageRows:
    return await _page(conn, schema, CORPORA, CORPUS_COLUMNS, [], limit, cursor)


async def corpus(conn: AsyncConnection, schema: str, corpus_id: str) -> Row | None:
    return await _one(conn, schema, CORPORA, CORPUS_COLUMNS, corpus_id=corpus_id)


async def runs(
    conn: AsyncConnection,
    schema: str,
    kind: str,
    *,
    program_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> PageRows:
    conditions = _given(
        ("kind", "=", kind), ("program_id", "=", program_id), ("status", "=", status)
    )
    return await _page(conn, schema, RUNS, RUNS.names, conditions, limit, cursor)


async def run(conn: AsyncConnection, schema: str, kind: str, run_id: str) -> Row | None:
    return await _one(conn, schema, RUNS, RUNS.names, kind=kind, run_id=run_id)


async def audit_trail(
    conn: AsyncConnection, schema: str, program_id: str, *, limit: int, cursor: str | None
) -> PageRows:
    conditions = _given(("program_id", "=", program_id))
    return await _page(conn, schema, AUDIT_LOG, AUDIT_LOG.names, conditions, limit, cursor)


# --- operations ------------------------------------------------------------------------


async def count_by_status(conn: AsyncConnection, schema: str, table: Table) -> list[Row]:
    """`status` and `n` (rows in that status), by status."""
    return await _fetch_all(
        conn,
        sql.SQL("SELECT status, count(*) AS n FROM {} GROUP BY status ORDER BY status").format(
            _table(schema, table)
        ),
    )


async def projection_lag(
    conn: AsyncConnection, event_store_schema: str, read_schema: str
) -> dict[str, Any]:
    # The same query `dspyops projections status` runs: it lives with the projections.
    return await read_lag(conn, event_store_schema, read_schema)


async def projector(
    conn: AsyncConnection, read_schema: str, lag: dict[str, Any]
) -> ProjectorStatus:
    """Running, behind or stopped: the rule is `projections.lag.projector_status`'s."""
    return await projector_status(conn, read_schema, lag)


# --- helpers ---------------------------------------------------------------------------


async def _page(
    conn: AsyncConnection,
    schema: str,
    table: Table,
    columns: Sequence[str],
    conditions: list[Condition],
    limit: int,
    cursor: str | None,
) -> PageRows:
    """One page of `table` newest first: rows before the cursor's position, `limit + 1`
    fetched to know whether another page follows."""
    if cursor is not None:
        conditions = [*conditions, ("position < %s", pagination.decode(cursor))]
    query = _page_query(schema, table.name, tuple(columns), tuple(c for c, _ in conditions))
    rows = await _fetch_all(conn, query, [*(param for _, param in conditions), limit + 1])
    return PageRows(*pagination.page(rows, limit))


async def _one(
    conn: AsyncConnection, schema: str, table: Table, columns: Sequence[str], **key: Any
) -> Row | None:
    rows = await _fetch_all(
        conn, _one_query(schema, table.name, tuple(columns), tuple(key)), list(key.values())
    )
    return rows[0] if rows else None


# The statements of `_page` and `_one`, composed once per shape: composing and encoding
# them cost a tenth of a request's CPU (py-spy, bench/bench_read_side.py). Text, not
# Composed, so that psycopg's own cache of converted queries (keyed by text) applies.
# Bounded by the code's shapes (tables, column lists, filters given) times read schemas.


@functools.lru_cache(maxsize=1024)
def _page_query(schema: str, table: str, columns: tuple[str, ...], where: tuple[str, ...]) -> str:
    condition: sql.Composable = sql.SQL("")
    if where:
        condition = sql.SQL("WHERE ") + sql.SQL(" AND ").join(map(sql.SQL, where))
    return (
        sql.SQL("SELECT {} FROM {}.{} {} ORDER BY position DESC LIMIT %s")
        .format(_columns(columns), sql.Identifier(schema), sql.Identifier(table), condition)
        .as_string()
    )


@functools.lru_cache(maxsize=1024)
def _one_query(schema: str, table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in key)
    return (
        sql.SQL("SELECT {} FROM {}.{} WHERE {}")
        .format(_columns(columns), sql.Identifier(schema), sql.Identifier(table), where)
        .as_string()
    )


@functools.cache
def _test(column: str, op: str) -> str:
    return sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(op)).as_string()


def _given(*tests: tuple[str, str, Any]) -> list[Condition]:
    """`column op %s` for each (column, op, value) whose value is given (None: no filter)."""
    return [(_test(column, op), value) for column, op, value in tests if value is not None]


async def _fetch_all(
    conn: AsyncConnection, query: sql.Composed | str, params: list[Any] | None = None
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params or [])
        return await cur.fetchall()


def _table(schema: str, table: Table) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table.name))


def _columns(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
