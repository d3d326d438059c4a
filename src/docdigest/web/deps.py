"""What every page route needs: the logged-in person (or a trip to the login page) and render()."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from docdigest.users.auth import OptionalUser
from docdigest.users.models import User
from docdigest.web.templating import templates


class LoginRequired(Exception):
    """A page that needs a person was asked for anonymously; errors.py redirects to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def page_user(request: Request, user: OptionalUser) -> User:
    if user is None:
        raise LoginRequired(request.url.path)
    return user


PageUser = Annotated[User, Depends(page_user)]


def login_url(next_path: str) -> str:
    return "/login" if next_path in ("", "/") else f"/login?next={quote(next_path, safe='/')}"


def safe_next(next_path: str | None) -> str:
    """Only same-site paths: an open redirect after login would make phishing easy."""
    if next_path and next_path.startswith("/") and not next_path.startswith(("//", "/\\")):
        return next_path
    return "/documents"


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    """303 so the browser follows a form POST with a GET."""
    return RedirectResponse(url, status_code=303)
