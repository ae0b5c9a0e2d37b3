"""Two versions side by side on the same examples: `/ui/programs/{id}/compare?a=2&b=3`.

The runs read model keeps an evaluation's per-example results (`index`, `score`, the
`outputs` the program gave, `error` when its LM call failed), not the examples' inputs.
Two evaluations scored the same examples when they took the same dataset version with the
same metric and scored as many examples: the page pairs the newest such evaluations of
the two versions, and their results by `index`. The inputs are the dataset's: the dev
split as of that version (what EvaluateProgram scores), or every example when the dataset
has no dev split; they are shown only when that count matches the number scored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.routes.programs import ProgramId, load_program
from dspyops.api.ui import queries
from dspyops.api.ui.columns import compare_columns
from dspyops.api.ui.render import page
from dspyops.api.ui.tables import Table, path

router = APIRouter(prefix="/ui", include_in_schema=False)

VersionQuery = Annotated[int | None, Query(ge=1, le=2_147_483_647)]
Row = dict[str, Any]
# The examples shown; an evaluation scores at most what its dataset holds.
MAX_ROWS = 1000


@router.get("/programs/{program_id}/compare", response_class=HTMLResponse)
async def compare_page(
    request: Request,
    program_id: ProgramId,
    db: DbDep,
    settings: SettingsDep,
    a: VersionQuery = None,
    b: VersionQuery = None,
) -> HTMLResponse:
    schema = settings.read_model_schema
    program = await load_program(db, schema, program_id)
    versions = [row["number"] for row in await views.versions(db, schema, program_id)]
    # By default the serving version against the latest one.
    a = a or program["deployed_version"]
    b = b or program["latest_version"]
    context: dict[str, Any] = {"pair": None, "examples": None}
    if a is not None and b is not None and a != b:
        found = await queries.completed_evaluations(db, schema, program_id, [a, b])
        of_a, of_b = ([r for r in found if r["version"] == v] for v in (a, b))
        pair = newest_pair(of_a, of_b)
        if pair is not None:
            context = await _side_by_side(db, schema, *pair)
    return page(
        request,
        "compare.html",
        title=f"{program['name']}: two versions on the same examples",
        back=path("programs", program_id),
        versions=versions,
        a=a,
        b=b,
        **context,
    )


def newest_pair(runs_a: list[Row], runs_b: list[Row]) -> tuple[Row, Row] | None:
    """The newest evaluations of A and of B that scored the same examples: same dataset
    version, metric and number of examples (the runs table does not keep the split)."""

    def key(run: Row) -> tuple[Any, ...]:
        return (run["dataset_id"], run["dataset_version"], run["metric"], run["examples"])

    pairs = [
        (run_a, run_b)
        for run_a in runs_a
        for run_b in runs_b
        if key(run_a) == key(run_b) and run_a["dataset_version"] is not None
    ]

    # The pair with the newest run, and of those the one whose other run is newest.
    def newness(pair: tuple[Row, Row]) -> tuple[int, int]:
        positions = sorted((pair[0]["position"], pair[1]["position"]), reverse=True)
        return positions[0], positions[1]

    return max(pairs, key=newness, default=None)


def side_by_side(results_a: list[Row], results_b: list[Row]) -> list[Row]:
    """One row per example scored by both, those where the scores differ most first."""
    by_index = {r["index"]: r for r in results_b}
    rows = []
    for result_a in results_a:
        result_b = by_index.get(result_a["index"])
        if result_b is None:
            continue
        score_a, score_b = result_a.get("score"), result_b.get("score")
        diff = None if score_a is None or score_b is None else score_b - score_a
        rows.append(
            {
                "index": result_a["index"],
                "a": result_a,
                "b": result_b,
                "diff": diff,
            }
        )
    return sorted(rows, key=lambda r: (-abs(r["diff"] or 0.0), r["index"]))


async def _side_by_side(db: Any, schema: str, run_a: Row, run_b: Row) -> dict[str, Any]:
    full_a = await views.run(db, schema, "evaluation", run_a["run_id"])
    full_b = await views.run(db, schema, "evaluation", run_b["run_id"])
    # Completed runs stay: they were read a moment ago.
    assert full_a is not None
    assert full_b is not None
    rows = side_by_side(full_a["per_example"], full_b["per_example"])
    inputs = await _inputs(db, schema, run_a)
    for row in rows:
        row["example"] = inputs[row["index"]] if inputs else None
    tally = {
        "better": sum(1 for r in rows if (r["diff"] or 0) > 0),
        "worse": sum(1 for r in rows if (r["diff"] or 0) < 0),
        "same": sum(1 for r in rows if not r["diff"]),
    }
    table = Table(
        f"v{run_a['version']} and v{run_b['version']} on the same examples, "
        "the biggest differences first",
        compare_columns(run_a["version"], run_b["version"], with_inputs=inputs is not None),
        rows[:MAX_ROWS],
        empty="No example was scored by both.",
    )
    hrefs = {"a": path("evaluations", run_a["run_id"]), "b": path("evaluations", run_b["run_id"])}
    return {"pair": (full_a, full_b), "tally": tally, "examples": table, "hrefs": hrefs}


async def _inputs(db: Any, schema: str, run: Row) -> list[Any] | None:
    """The examples the evaluation scored, by index: the dev split as of its dataset
    version, else every example; None when neither count matches what it scored."""
    wanted = int(run["examples"])
    for split in ("dev", None):
        found = await views.dataset_examples(
            db,
            schema,
            run["dataset_id"],
            split=split,
            version=run["dataset_version"],
            limit=wanted,
            cursor=None,
        )
        if len(found.items) == wanted and found.next_cursor is None:
            return [row["example"] for row in found.items]
    return None
