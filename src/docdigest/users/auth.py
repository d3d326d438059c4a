"""Who is asking: the session cookie or a bearer token, as FastAPI dependencies.

Tokens are checked by the process's `TokenCheck` (`users/sessions.py`), which looks
up the tokens of requests that arrive together in one query and keeps nothing.

`CurrentUser` also enforces CSRF on cookie-authenticated state-changing requests,
so no route that acts for a logged-in browser can forget it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response

from docdigest.core.db import SessionDep
from docdigest.core.errors import Forbidden, Unauthorized
from docdigest.settings import Settings
from docdigest.users.csrf import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    check_csrf,
    csrf_token,
    is_bearer,
)
from docdigest.users.models import User
from docdigest.users.sessions import TokenCheck, open_session

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminUser",
    "CsrfProtected",
    "CurrentUser",
    "OptionalUser",
    "check_csrf",
    "clear_session_cookie",
    "csrf_token",
    "open_session",
    "request_token",
    "set_session_cookie",
    "token_user",
]


def request_token(request: Request) -> str | None:
    """The session token or access token the request carries (bearer wins over cookie)."""
    if is_bearer(request):
        return request.headers["authorization"][7:].strip() or None
    return request.cookies.get(SESSION_COOKIE) or None


async def token_user(request: Request) -> User | None:
    """The user the request's token belongs to, checked by the process's `TokenCheck`
    together with the tokens of other requests arriving at the same time.

    The user belongs to no session and may be shared with other requests: read it,
    do not change it.
    """
    token = request_token(request)
    if not token:
        return None
    token_check: TokenCheck = request.app.state.token_check
    return await token_check.user(token)


async def optional_user(request: Request, session: SessionDep) -> User | None:
    checked = await token_user(request)
    # The route gets a copy in its own session, which it may change (PATCH /api/me),
    # made without a query.
    user = await session.merge(checked, load=False) if checked is not None else None
    if user is not None:
        await check_csrf(request)
    request.state.user = user
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthorized("not logged in")
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
#: For state-changing routes that anonymous browsers use too (the login and signup forms).
CsrfProtected = Depends(check_csrf)


def _is_https(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return request.url.scheme == "https" or settings.base_url.startswith("https://")


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(timedelta(hours=settings.session_max_age_hours).total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_is_https(request)
    )
