"""The console's token rule: the API's bearer token, kept in a cookie by a login form.

With `DSPYOPS_API_TOKEN` set, a page opens for the token in the `dspyops_token` cookie
(HttpOnly, SameSite=Strict, path /ui; Secure over HTTPS) or in an Authorization header,
and sends anyone else to the login form. Without a token every page is open, as every
JSON route is. The login form is the one route besides GET: it writes a cookie, nothing else.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from dspyops.api.deps import SettingsDep, bearer, token_admits
from dspyops.api.ui.render import SECURITY_HEADERS, page

COOKIE = "dspyops_token"
HOME = "/ui/programs"
# A token is short; a bigger form is not a login.
MAX_FORM_BYTES = 8_192

router = APIRouter(prefix="/ui", include_in_schema=False)


class LoginRequired(Exception):
    """Raised by `console_access`; answered with a redirect to the login form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def console_access(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    given = request.cookies.get(COOKIE) or (credentials.credentials if credentials else "")
    if not token_admits(settings, given):
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query)


async def to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = f"/ui/login?{urlencode({'next': exc.next_path})}"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if not value or not value.startswith("/ui/") or "\\" in value or value.startswith("//"):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return value


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    if not settings.api_token:
        return RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    return page(request, "login.html", title="Log in", next=safe_next(next), refused=False)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, settings: SettingsDep) -> Response:
    if not _same_origin(request):
        return page(request, "login.html", 403, title="Log in", next=HOME, refused=True)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return page(request, "login.html", 413, title="Log in", next=HOME, refused=True)
    form = parse_qs(body.decode("utf-8", "replace"))
    token = form.get("token", [""])[0]
    target = safe_next(form.get("next", [None])[0])
    if not settings.api_token or not token or not token_admits(settings, token):
        return page(request, "login.html", 401, title="Log in", next=target, refused=True)
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        token,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return Response(status_code=status.HTTP_403_FORBIDDEN)
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def _same_origin(request: Request) -> bool:
    """A form posted from another site is refused (browsers send Origin on POST)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host")
