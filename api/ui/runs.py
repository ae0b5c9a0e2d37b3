"""Optimizations and evaluations: the lists (of one program, in one status, when asked), and
one run's progress, score over its steps, what it ran with (its dataset version and
provenance) and per-example results, failures first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import NO_NUL, not_found
from dspyops.api.pagination import CursorQuery
from dspyops.api.ui import queries
from dspyops.api.ui.charts import from_rows
from dspyops.api.ui.columns import EXAMPLE_COLUMNS, RUN_COLUMNS
from dspyops.api.ui.render import page, plain, score
from dspyops.api.ui.tables import Table, with_query

router = APIRouter(prefix="/ui", include_in_schema=False)

Kind = Literal["optimization", "evaluation"]
RunId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
ProgramFilter = Annotated[str, Query(max_length=200, pattern=NO_NUL)]
PAGE = 50
TITLES = {"optimization": "Optimizations", "evaluation": "Evaluations"}
STATUSES = ("requested", "running", "completed", "failed", "cancelled")


@router.get("/optimizations", response_class=HTMLResponse)
async def optimizations_page(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    program: ProgramFilter = "",
    status: str = "",
    cursor: CursorQuery = None,
) -> HTMLResponse:
    wanted = Filters(program, status if status in STATUSES else "")
    return await _list(request, db, settings.read_model_schema, "optimization", wanted, cursor)


@router.get("/evaluations", response_class=HTMLResponse)
async def evaluations_page(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    program: ProgramFilter = "",
    status: str = "",
    cursor: CursorQuery = None,
) -> HTMLResponse:
    wanted = Filters(program, status if status in STATUSES else "")
    return await _list(request, db, settings.read_model_schema, "evaluation", wanted, cursor)


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


class Filters(NamedTuple):
    """A run list's filters ("": any)."""

    program: str
    status: str


async def _list(
    request: Request, db: Any, schema: str, kind: Kind, wanted: Filters, cursor: str | None
) -> HTMLResponse:
    found = await views.runs(
        db,
        schema,
        kind,
        program_id=wanted.program or None,
        status=wanted.status or None,
        limit=PAGE,
        cursor=cursor,
    )
    base = f"/ui/{kind}s"
    next_href = (
        with_query(base, **wanted._asdict(), cursor=found.next_cursor)
        if found.next_cursor
        else None
    )
    # Progress and new runs arrive without a reload: on the first page, and not while
    # filtering by status (a run leaving that status would stay as it was shown).
    live = None
    if not cursor and not wanted.status:
        since = datetime.now(UTC).isoformat()
        live = with_query(f"/ui/live/{kind}s", since=since, program=wanted.program)
    caption = TITLES[kind] + "".join(
        f", {label} {value}" for label, value in zip(("of", "status"), wanted, strict=True) if value
    )
    table = Table(
        caption,
        RUN_COLUMNS[kind],
        found.items,
        next_href,
        f"No {kind}s" + (" match." if any(wanted) else " yet."),
        live=live,
        row_ids=lambda row: str(row["run_id"]),
    )
    return page(
        request,
        "runs.html",
        title=TITLES[kind],
        listing=table,
        action=base,
        wanted=wanted,
        statuses=STATUSES,
    )


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
        ran_with=ran_with(run),
        summary=Table(TITLES[kind], RUN_COLUMNS[kind], [run]),
        charts=[chart] if steps else [],
        examples=examples,
    )


def ran_with(run: dict[str, Any]) -> list[tuple[str, str]]:
    """What the run took and ran with, as (label, text) facts: the dataset version its
    examples came from and its provenance (recorded once completed; runs recorded before
    either was kept say so)."""
    dataset = run["dataset_id"]
    version = run.get("dataset_version")
    facts = [("Examples from", f"{dataset} v{version}" if version else f"{dataset} (unpinned)")]
    if run.get("config"):
        facts.append(("Config requested", plain(run["config"])))
    provenance = run.get("provenance")
    if not provenance:
        return [*facts, ("Provenance", "not recorded (recorded when a run completes)")]
    models = "; ".join(
        f"{lm['profile']}: {lm['model']}"
        + (" (offline)" if lm["offline"] else "")
        + (f", answered by {', '.join(lm['response_models'])}" if lm["response_models"] else "")
        for lm in provenance.get("lm_profiles", [])
    )
    return [
        *facts,
        ("dspy", plain(provenance.get("dspy_version"))),
        ("dspyops", plain(provenance.get("dspyops_version"))),
        ("Optimizer config as used", plain(provenance.get("optimizer_config"))),
        ("Seed", plain(provenance.get("seed"))),
        ("Models", models or plain(None)),
    ]


def failures_first(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errored examples, then the lowest scores, then the rest in their order."""

    def key(example: dict[str, Any]) -> tuple[int, float, int]:
        errored = 0 if example.get("error") else 1
        value = example.get("score")
        return (errored, float(value) if value is not None else -1.0, example.get("index", 0))

    return sorted(examples, key=key)
