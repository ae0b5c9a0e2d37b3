"""Datasets: sizes and splits, and their examples (with the version and execution each
came from)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES, NO_NUL, not_found
from dspyops.api.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=COMMON_RESPONSES)


class Dataset(BaseModel):
    dataset_id: str
    name: str
    dev_fraction: float
    size: int
    train_size: int
    dev_size: int
    created_at: datetime
    updated_at: datetime


class DatasetExample(BaseModel):
    dataset_id: str
    # Its place among the dataset's examples, from 1, in the order they were added.
    number: int
    split: Literal["train", "dev"]
    example: dict[str, Any]
    # The execution it was promoted from (PromoteExecutions); null when sent as such.
    source_execution_id: str | None
    # The dataset version that added it: version N holds the examples added up to N.
    dataset_version: int
    added_at: datetime
    command_id: str
    actor: str | None


DatasetId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]


@router.get("", response_model=Page[Dataset], summary="List datasets, newest first")
async def list_datasets(
    db: DbDep, settings: SettingsDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> dict[str, Any]:
    found = await views.datasets(db, settings.read_model_schema, limit=limit, cursor=cursor)
    return found.as_page()


@router.get("/{dataset_id}", response_model=Dataset, summary="One dataset")
async def get_dataset(dataset_id: DatasetId, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    row = await views.dataset(db, settings.read_model_schema, dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id)
    return row


@router.get(
    "/{dataset_id}/examples",
    response_model=Page[DatasetExample],
    summary="A dataset's examples in the order they were added, with where each came from",
)
async def list_examples(
    dataset_id: DatasetId,
    db: DbDep,
    settings: SettingsDep,
    split: Annotated[Literal["train", "dev"] | None, Query(description="One split only.")] = None,
    version: Annotated[
        int | None,
        Query(ge=1, le=2_147_483_647, description="As of this dataset version."),
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    schema = settings.read_model_schema
    if await views.dataset(db, schema, dataset_id) is None:
        raise not_found("dataset", dataset_id)
    found = await views.dataset_examples(
        db, schema, dataset_id, split=split, version=version, limit=limit, cursor=cursor
    )
    return found.as_page()
