"""The console's own queries: aggregates the JSON routes do not answer.

Everything a JSON route already reads comes from `api.views`; these add what a page
shows beside it (volume per program, evaluation scores by version, the span of a
program's executions, a run's score over its steps), each one SQL statement over an
index, whatever the number of executions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from dspyops.projections.read_schema import AUDIT_LOG, EXECUTIONS, RUNS, Table

Row = dict[str, Any]


async def volumes(conn: AsyncConnection, schema: str, program_ids: Sequence[str]) -> dict[str, int]:
    """Executions per program, for the programs listed (absent: none)."""
    if not program_ids:
        return {}
    rows = await _rows(
        conn,
        sql.SQL(
            "SELECT program_id, count(*) AS n FROM {} WHERE program_id = ANY(%s) GROUP BY 1"
        ).format(_table(schema, EXECUTIONS)),
        [list(program_ids)],
    )
    return {row["program_id"]: int(row["n"]) for row in rows}


async def evaluation_scores(
    conn: AsyncConnection, schema: str, program_id: str
) -> dict[int, float]:
    """Mean score of each version's completed evaluations."""
    rows = await _rows(
        conn,
        sql.SQL(
            "SELECT version, avg(score) AS score FROM {} WHERE kind = 'evaluation' "
            "AND program_id = %s AND status = 'completed' AND score IS NOT NULL GROUP BY 1"
        ).format(_table(schema, RUNS)),
        [program_id],
    )
    return {int(row["version"]): float(row["score"]) for row in rows}


async def execution_span(
    conn: AsyncConnection, schema: str, program_id: str
) -> tuple[datetime, datetime] | None:
    """When the program's first and last executions were requested (None: no executions)."""
    rows = await _rows(
        conn,
        sql.SQL(
            "SELECT min(requested_at) AS first, max(requested_at) AS last FROM {} "
            "WHERE program_id = %s"
        ).format(_table(schema, EXECUTIONS)),
        [program_id],
    )
    if not rows or rows[0]["first"] is None:
        return None
    return rows[0]["first"], rows[0]["last"]


async def latest_position(conn: AsyncConnection, schema: str, table: Table, **key: Any) -> int:
    """The newest row's position among those matching `key` (0: none): where live updates
    start from."""
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)
    rows = await _rows(
        conn,
        sql.SQL("SELECT coalesce(max(position), 0) AS p FROM {} WHERE {}").format(
            _table(schema, table), where
        ),
        list(key.values()),
    )
    return int(rows[0]["p"])


async def run_steps(
    conn: AsyncConnection, schema: str, kind: str, run_id: str, program_id: str
) -> list[Row]:
    """A run's progress as it was recorded (`step`, `total`, `best_score`), from the audit
    trail: the run's row keeps only the latest."""
    rows = await _rows(
        conn,
        sql.SQL(
            "SELECT changes FROM {} WHERE program_id = %s AND aggregate_kind = %s "
            "AND aggregate_id = %s AND changes ? 'step' ORDER BY position"
        ).format(_table(schema, AUDIT_LOG)),
        [program_id, kind, run_id],
    )
    steps: list[Row] = []
    score = None
    for row in rows:
        changed = row["changes"]
        # An entry holds what changed: an unchanged best score is the one before.
        if "best_score" in changed:
            score = changed["best_score"]["after"]
        steps.append({"step": changed["step"]["after"], "best_score": score})
    return steps


async def completed_evaluations(
    conn: AsyncConnection, schema: str, program_id: str, versions: Sequence[int]
) -> list[Row]:
    """The completed evaluations of these versions that kept per-example results, newest
    first (at most 200), without the results: what pairs two versions' runs."""
    return await _rows(
        conn,
        sql.SQL(
            "SELECT run_id, version, dataset_id, dataset_version, metric, score, position, "
            "jsonb_array_length(per_example) AS examples FROM {} WHERE kind = 'evaluation' "
            "AND program_id = %s AND version = ANY(%s) AND status = 'completed' "
            "AND jsonb_typeof(per_example) = 'array' ORDER BY position DESC LIMIT 200"
        ).format(_table(schema, RUNS)),
        [program_id, list(versions)],
    )


async def _rows(conn: AsyncConnection, query: sql.Composed, params: list[Any]) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _table(schema: str, table: Table) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table.name))
