"""What routes receive: settings, a pooled read connection, the read schema, the token check."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from dspyops.settings import Settings

bearer = HTTPBearer(auto_error=False, description="Needed when DSPYOPS_API_TOKEN is set.")


async def get_settings(request: Request) -> Settings:
    # async: FastAPI would run a plain def in its thread pool, a cost on every request.
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncConnection]:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[AsyncConnection, Depends(get_db)]


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    given = credentials.credentials if credentials else ""
    if not token_admits(settings, given):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def token_admits(settings: Settings, given: str) -> bool:
    """Whether `given` opens the guarded routes: anything when no token is set, else only
    the token itself (compared in constant time). The console's cookie is checked here too."""
    expected = settings.api_token
    if not expected:
        return True
    return hmac.compare_digest(given.encode(), expected.encode())
