"""Datasets: sizes and splits (the examples themselves stay in the event store)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
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


@router.get("", response_model=Page[Dataset], summary="List datasets, newest first")
async def list_datasets(
    db: DbDep, settings: SettingsDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> dict[str, Any]:
    found = await views.datasets(db, settings.read_model_schema, limit=limit, cursor=cursor)
    return found.as_page()


@router.get("/{dataset_id}", response_model=Dataset, summary="One dataset")
async def get_dataset(
    dataset_id: Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)],
    db: DbDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    row = await views.dataset(db, settings.read_model_schema, dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id)
    return row
