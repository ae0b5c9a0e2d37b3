"""Corpora: name, version and size (the documents themselves stay in the event store)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import COMMON_RESPONSES, NO_NUL, not_found
from dspyops.api.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/corpora", tags=["corpora"], responses=COMMON_RESPONSES)


class Corpus(BaseModel):
    corpus_id: str
    name: str
    # The latest corpus version (1 at registration, +1 per append or removal).
    version: int
    size: int
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[Corpus], summary="List corpora, newest first")
async def list_corpora(
    db: DbDep, settings: SettingsDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> dict[str, Any]:
    found = await views.corpora(db, settings.read_model_schema, limit=limit, cursor=cursor)
    return found.as_page()


@router.get("/{corpus_id}", response_model=Corpus, summary="One corpus")
async def get_corpus(
    corpus_id: Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)],
    db: DbDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    row = await views.corpus(db, settings.read_model_schema, corpus_id)
    if row is None:
        raise not_found("corpus", corpus_id)
    return row
