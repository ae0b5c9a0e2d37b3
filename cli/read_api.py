"""The CLI's view of the read-only HTTP API: GET a path, or one clear error with a hint."""

from __future__ import annotations

from typing import Any

import httpx

from dspyops.cli.console import EXIT_ERROR, EXIT_UNAVAILABLE
from dspyops.settings import Settings


class ReadApiError(Exception):
    def __init__(self, message: str, hint: str | None = None, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code


class ReadApi:
    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.api_url).rstrip("/")
        self._headers = (
            {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
        )

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = httpx.get(
                self.base_url + path, params=query, headers=self._headers, timeout=10.0
            )
        except httpx.TransportError as exc:
            raise ReadApiError(
                f"the API at {self.base_url} does not answer ({type(exc).__name__})",
                "start the stack with `dspyops dev` (or `dspyops api`), or pass --api URL",
                EXIT_UNAVAILABLE,
            ) from None
        if response.status_code == 401:
            raise ReadApiError(f"the API at {self.base_url} wants a token", "set DSPYOPS_API_TOKEN")
        if response.status_code == 503:
            raise ReadApiError(
                f"the API is not ready: {_detail(response)}",
                "is the projector running? `dspyops dev` starts it",
                EXIT_UNAVAILABLE,
            )
        if response.status_code >= 400:
            raise ReadApiError(f"{response.status_code} from {path}: {_detail(response)}")
        return response.json()

    def items(self, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
        """Up to `limit` items of a paged list, following `next_cursor`."""
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < limit:
            page = self.get(path, limit=min(limit - len(items), 200), cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail) if detail else response.text[:200]
