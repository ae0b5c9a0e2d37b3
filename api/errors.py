"""The error body every non-2xx answer has, and the responses documented on routers."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel

# PostgreSQL text cannot hold NUL: such values are rejected as invalid before any query.
NO_NUL = r"^[^\x00]*$"


class ErrorBody(BaseModel):
    detail: str


def not_found(kind: str, ident: object) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{kind} {ident!r} not found")


# Documented on every router so clients (and schemathesis) know these answers.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad cursor or parameter value"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "No such resource"},
    503: {"model": ErrorBody, "description": "Read database unavailable or not built yet"},
}
