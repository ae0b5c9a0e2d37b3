"""The programs page (search, status, aliases, versions, volume) and one program's page
(versions and the scores that made them, charts of its executions, its traffic splits and
the versions compared with the serving one, runs, serving history, audit trail)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from dspyops.api import arms, views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import NO_NUL
from dspyops.api.pagination import CursorQuery
from dspyops.api.routes.executions import shape as shape_execution
from dspyops.api.routes.programs import ProgramId, load_program
from dspyops.api.routes.stats import Bucket
from dspyops.api.ui import queries
from dspyops.api.ui.charts import Chart, from_rows
from dspyops.api.ui.columns import (
    COMPARISON_COLUMNS,
    EXECUTION_COLUMNS,
    PROGRAM_COLUMNS,
    RUN_COLUMNS,
    SPLIT_COLUMNS,
    VERSION_COLUMNS,
    online_evaluation,
    traffic,
)
from dspyops.api.ui.render import ms, page, percent, plain, score, usd
from dspyops.api.ui.tables import Table, path, with_query
from dspyops.api.ui.trails import trail
from dspyops.projections.read_schema import EXECUTIONS

router = APIRouter(prefix="/ui", include_in_schema=False)

STATUSES = ("draft", "training", "optimized", "deployed", "deprecated")
PAGE = 50
RECENT = 20


@router.get("/programs", response_class=HTMLResponse)
async def programs_page(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    name: Annotated[str, Query(max_length=200, pattern=NO_NUL)] = "",
    status: str = "",
    cursor: CursorQuery = None,
) -> HTMLResponse:
    schema = settings.read_model_schema
    wanted = status if status in STATUSES else None
    found = await views.programs(
        db, schema, status=wanted, name=name or None, limit=PAGE, cursor=cursor
    )
    counts = await queries.volumes(db, schema, [row["program_id"] for row in found.items])
    rows = [{**row, "executions": counts.get(row["program_id"], 0)} for row in found.items]
    next_href = None
    if found.next_cursor:
        next_href = with_query("/ui/programs", name=name, status=wanted, cursor=found.next_cursor)
    table = Table("Programs", PROGRAM_COLUMNS, rows, next_href, "No program matches.")
    return page(
        request,
        "programs.html",
        title="Programs",
        listing=table,
        name=name,
        status=wanted or "",
        statuses=STATUSES,
    )


@router.get("/programs/{program_id}", response_class=HTMLResponse)
async def program_page(
    request: Request,
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    bucket: Bucket | None = None,
    cursor: CursorQuery = None,
) -> HTMLResponse:
    schema = settings.read_model_schema
    program = await load_program(db, schema, program_id)
    # Taken before the executions shown: one arriving in between is sent again, not lost.
    after = await queries.latest_position(db, schema, EXECUTIONS, program_id=program_id)
    versions = await _versions(db, schema, program)
    span = await queries.execution_span(db, schema, program_id)
    width = bucket or auto_bucket(span)
    stats = await views.execution_stats(
        db, schema, program_id, bucket=width, since=None, until=None
    )
    executions = await views.executions(
        db,
        schema,
        program_id,
        status=None,
        version=None,
        since=None,
        until=None,
        limit=RECENT,
        cursor=cursor,
    )
    here = path("programs", program_id)
    live_base = path("live", "programs", program_id)
    tables = {
        "versions": Table("Versions", VERSION_COLUMNS, versions),
        "executions": Table(
            "Executions, newest first",
            EXECUTION_COLUMNS,
            [shape_execution(row) for row in executions.items],
            with_query(here, bucket=width, cursor=executions.next_cursor)
            if executions.next_cursor
            else None,
            # Newer executions arrive without a reload (first page only).
            live=None if cursor else with_query(f"{live_base}/executions", after=after),
            row_ids=lambda row: str(row["execution_id"]),
        ),
        "splits": Table(
            "Traffic splits",
            SPLIT_COLUMNS,
            [{"alias": alias, **split} for alias, split in sorted(program["splits"].items())],
            empty="No alias splits its traffic.",
        ),
        "comparison": comparison_table(program["deployed_version"], stats["by_version"]),
        "optimizations": await _runs(db, schema, "optimization", program_id),
        "evaluations": await _runs(db, schema, "evaluation", program_id),
        "serving": await trail(db, schema, program_id, "serving", RECENT),
        "audit": await trail(db, schema, program_id, "audit", RECENT),
    }
    return page(
        request,
        "program.html",
        title=program["name"],
        program=program,
        aliases=sorted(program["aliases"].items()),
        traffic=traffic(program["splits"]),
        online_evaluation=online_evaluation(program["online_evaluation"]),
        here=here,
        runs_of={k: with_query(f"/ui/{k}s", program=program_id) for k in RUN_COLUMNS},
        tables=tables,
        charts=program_charts(versions, stats),
        bucket=width,
        buckets=("minute", "hour", "day", "week"),
        overall=stats["overall"][0] if stats["overall"] else None,
        formats={"ms": ms, "percent": percent, "usd": usd, "plain": plain},
    )


def auto_bucket(span: tuple[Any, Any] | None) -> str:
    """A bucket that gives a readable number of points (at most a few hundred)."""
    if span is None:
        return "hour"
    width = span[1] - span[0]
    if width < timedelta(hours=3):
        return "minute"
    if width < timedelta(days=7):
        return "hour"
    if width < timedelta(days=180):
        return "day"
    return "week"


def program_charts(versions: list[dict[str, Any]], stats: dict[str, list[Any]]) -> list[Chart]:
    by_time, by_version = stats["by_time"], stats["by_version"]

    def at(row: dict[str, Any]) -> float:
        return float(row["k"].timestamp())

    def version(row: dict[str, Any]) -> float:
        return float(row["k"])

    return [
        from_rows(
            "score-by-version",
            "Score by version",
            "version",
            versions,
            lambda row: float(row["number"]),
            [("optimized", "optimized_score", score), ("evaluated", "evaluation_score", score)],
        ),
        from_rows(
            "executions-over-time",
            "Executions over time",
            "time",
            by_time,
            at,
            [("executions", "count", plain), ("failed", "failed", plain)],
        ),
        from_rows(
            "success-over-time",
            "Success rate over time",
            "time",
            by_time,
            at,
            [("success rate", "success_rate", percent)],
        ),
        from_rows(
            "latency-over-time",
            "Latency over time",
            "time",
            by_time,
            at,
            [("p50", "latency_p50_ms", ms), ("p95", "latency_p95_ms", ms)],
        ),
        from_rows(
            "tokens-by-version",
            "Tokens per execution by version",
            "version",
            by_version,
            version,
            [("tokens per execution", "tokens_per_execution", plain)],
        ),
        from_rows(
            "cost-by-version",
            "Cost by version (known prices)",
            "version",
            by_version,
            version,
            [("cost", "cost_usd", usd)],
        ),
    ]


async def _versions(db: Any, schema: str, program: dict[str, Any]) -> list[dict[str, Any]]:
    evaluated = await queries.evaluation_scores(db, schema, program["program_id"])
    return [
        {
            **row,
            "evaluation_score": evaluated.get(row["number"]),
            "serving": row["number"] == program["deployed_version"],
            "aliases": sorted(a for a, n in program["aliases"].items() if n == row["number"]),
        }
        for row in await views.versions(db, schema, program["program_id"])
    ]


def comparison_table(serving: int | None, by_version: list[dict[str, Any]]) -> Table:
    """Every other version with executions against the serving one (`GET
    /programs/{id}/metrics`'s `comparison`): a split's arms side by side."""
    base = next((row for row in by_version if row["k"] == serving), None)
    rows = [] if base is None else [arms.difference(r, base) for r in by_version if r is not base]
    return Table(
        "Versions against the serving version (differences, 95 % intervals)",
        COMPARISON_COLUMNS,
        rows,
        empty="No other version has executions to compare with the serving one.",
    )


async def _runs(db: Any, schema: str, kind: str, program_id: str) -> Table:
    found = await views.runs(
        db, schema, kind, program_id=program_id, status=None, limit=RECENT, cursor=None
    )
    title = "Optimizations" if kind == "optimization" else "Evaluations"
    # Older runs of this program: the runs list, filtered to it.
    more = with_query(f"/ui/{kind}s", program=program_id, cursor=found.next_cursor)
    return Table(
        title,
        RUN_COLUMNS[kind],
        found.items,
        more if found.next_cursor else None,
        empty=f"No {title.lower()} yet.",
    )
