"""Optimizations and evaluations: the lists, and one run's progress, score over its
steps and per-example results, failures first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import NO_NUL, not_found
from dspyops.api.pagination import CursorQuery
from dspyops.api.ui import queries
from dspyops.api.ui.charts import from_rows
from dspyops.api.ui.columns import EXAMPLE_COLUMNS, RUN_COLUMNS
from dspyops.api.ui.render import page, score
from dspyops.api.ui.tables import Table, with_query

router = APIRouter(prefix="/ui", include_in_schema=False)

Kind = Literal["optimization", "evaluation"]
RunId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
PAGE = 50
TITLES = {"optimization": "Optimizations", "evaluation": "Evaluations"}


@router.get("/optimizations", response_class=HTMLResponse)
async def optimizations_page(
    request: Request, db: DbDep, settings: SettingsDep, cursor: CursorQuery = None
) -> HTMLResponse:
    return await _list(request, db, settings.read_model_schema, "optimization", cursor)


@router.get("/evaluations", response_class=HTMLResponse)
async def evaluations_page(
    request: Request, db: DbDep, settings: SettingsDep, cursor: CursorQuery = None
) -> HTMLResponse:
    return await _list(request, db, settings.read_model_schema, "evaluation", cursor)


@router.get("/optimizations/{run_id}", response_class=HTMLResponse)
async def optimization_page(
    request: Request, run_id: RunId, db: DbDep, settings: SettingsDep
) -> HTMLResponse:
    return await _one(request, db, settings.read_model_schema, "optimization", run_id)


@router.get("/evaluations/{run_id}", response_class=HTMLResponse)
async def evaluation_page(
    request: Request, run_id: RunId, db: DbDep, settings: SettingsDep
) -> HTMLResponse:
    return await _one(request, db, settings.read_model_schema, "evaluation", run_id)


async def _list(
    request: Request, db: Any, schema: str, kind: Kind, cursor: str | None
) -> HTMLResponse:
    found = await views.runs(
        db, schema, kind, program_id=None, status=None, limit=PAGE, cursor=cursor
    )
    base = f"/ui/{kind}s"
    next_href = with_query(base, cursor=found.next_cursor) if found.next_cursor else None
    table = Table(
        TITLES[kind],
        RUN_COLUMNS[kind],
        found.items,
        next_href,
        f"No {kind}s yet.",
        # Progress and new runs arrive without a reload (first page only).
        live=None
        if cursor
        else with_query(f"/ui/live/{kind}s", since=datetime.now(UTC).isoformat()),
        row_ids=lambda row: str(row["run_id"]),
    )
    return page(request, "runs.html", title=TITLES[kind], listing=table)


async def _one(request: Request, db: Any, schema: str, kind: Kind, run_id: str) -> HTMLResponse:
    run = await views.run(db, schema, kind, run_id)
    if run is None:
        raise not_found(kind, run_id)
    steps = await queries.run_steps(db, schema, kind, run_id, run["program_id"])
    chart = from_rows(
        "score-over-steps",
        "Best score over steps",
        "step",
        steps,
        lambda row: float(row["step"]),
        [("best score", "best_score", score)],
    )
    examples = Table(
        "Per-example results, failures first",
        EXAMPLE_COLUMNS,
        failures_first(run.get("per_example") or []),
        empty="No per-example results recorded.",
    )
    return page(
        request,
        "run.html",
        title=f"{kind.capitalize()} {run_id}",
        kind=kind,
        run=run,
        summary=Table(TITLES[kind], RUN_COLUMNS[kind], [run]),
        charts=[chart] if steps else [],
        examples=examples,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def failures_first(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errored examples, then the lowest scores, then the rest in their order."""

    def key(example: dict[str, Any]) -> tuple[int, float, int]:
        errored = 0 if example.get("error") else 1
        value = example.get("score")
        return (errored, float(value) if value is not None else -1.0, example.get("index", 0))

    return sorted(examples, key=key)
