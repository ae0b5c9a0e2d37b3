"""Cursor pagination on the rows' `position` (unique, stable across rebuilds), newest first.

A cursor is opaque to clients (today: the last position seen, in decimal, so that every
value the documented pattern admits is a valid cursor). Keyset paging never skips or
repeats a row when new rows arrive between pages; the query is `views._page`'s.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query, status
from pydantic import BaseModel

T = TypeVar("T")

MAX_LIMIT = 200
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
CursorQuery = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` from the previous page."),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode(position: int) -> str:
    return str(position)


def decode(cursor: str) -> int:
    position = int(cursor) if cursor.isascii() and cursor.isdigit() else -1
    if position < 0:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"invalid cursor {cursor!r}")
    return position


def page(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Rows of one page and the next cursor; the query fetched `limit + 1` rows."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode(rows[-1]["position"])
    return rows, None
