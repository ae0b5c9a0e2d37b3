"""Datasets and corpora: their sizes and splits, and a dataset's examples with the version
and execution each came from, as the read models hold them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import NO_NUL, not_found
from dspyops.api.pagination import CursorQuery
from dspyops.api.ui.columns import CORPUS_COLUMNS, DATASET_COLUMNS, EXAMPLE_ROW_COLUMNS
from dspyops.api.ui.render import page
from dspyops.api.ui.tables import Table, with_query

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50


@router.get("/datasets", response_class=HTMLResponse)
async def datasets_page(
    request: Request, db: DbDep, settings: SettingsDep, cursor: CursorQuery = None
) -> HTMLResponse:
    schema = settings.read_model_schema
    datasets = await views.datasets(db, schema, limit=PAGE, cursor=cursor)
    corpora = await views.corpora(db, schema, limit=PAGE, cursor=None)
    next_href = (
        with_query("/ui/datasets", cursor=datasets.next_cursor) if datasets.next_cursor else None
    )
    return page(
        request,
        "datasets.html",
        title="Datasets and corpora",
        tables=[
            Table("Datasets", DATASET_COLUMNS, datasets.items, next_href, "No datasets yet."),
            Table("Corpora", CORPUS_COLUMNS, corpora.items, empty="No corpora yet."),
        ],
    )


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
async def dataset_page(
    request: Request,
    dataset_id: Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)],
    db: DbDep,
    settings: SettingsDep,
    cursor: CursorQuery = None,
) -> HTMLResponse:
    schema = settings.read_model_schema
    row = await views.dataset(db, schema, dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id)
    examples = await views.dataset_examples(
        db, schema, dataset_id, split=None, version=None, limit=PAGE, cursor=cursor
    )
    here = f"/ui/datasets/{dataset_id}"
    more = with_query(here, cursor=examples.next_cursor) if examples.next_cursor else None
    return page(
        request,
        "datasets.html",
        title=f"Dataset {row['name']}",
        tables=[
            Table("Dataset", DATASET_COLUMNS, [row]),
            Table("Examples", EXAMPLE_ROW_COLUMNS, examples.items, more, "No examples yet."),
        ],
    )
