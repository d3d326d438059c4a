"""Error pages in the app's style for browsers; API clients keep getting JSON."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from docdigest.users.models import User
from docdigest.web.deps import LoginRequired, login_url, redirect
from docdigest.web.templating import templates

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    413: "File too large",
    415: "File type not supported",
    422: "Check your input",
    429: "Too many attempts",
    500: "Something went wrong",
}
EXPLANATIONS = {
    404: "There is nothing here, or it belongs to someone else.",
    500: "The error is logged. Try again in a moment; if it keeps happening, tell the operator.",
}


def wants_html(request: Request) -> bool:
    """A browser navigating to a page, as opposed to an API client or a script."""
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


async def _user_of(request: Request) -> User | None:
    """Who is asking, so the error page's navigation is the right one; best effort.

    Looked up afresh: the request's own session was rolled back by the error, which
    leaves the user it loaded expired and detached.
    """
    from docdigest.users.auth import token_user

    if getattr(request.app.state, "token_check", None) is None:
        return None  # the app has not started
    try:
        return await token_user(request)
    except Exception:  # the page must render even when the database is the problem
        log.warning("could not look up the user for an error page", exc_info=True)
        return None


async def error_page(request: Request, status_code: int, message: str | None = None) -> Response:
    request.state.user = await _user_of(request)
    title = TITLES.get(status_code, "Error")
    context = {
        "status_code": status_code,
        "title": title,
        # A 404's own message adds nothing to the explanation (and must not say whose it is).
        "message": message if message and message != title and status_code != 404 else None,
        "explanation": EXPLANATIONS.get(status_code),
    }
    return templates.TemplateResponse(request, "error.html", context, status_code=status_code)


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("HX-Request"):
            # A poll whose session ended: move the whole page (and come back to it after
            # logging in), rather than swap the login form into a status badge.
            page = urlsplit(request.headers.get("HX-Current-URL", "")).path or "/"
            return Response(headers={"HX-Redirect": login_url(page)})
        return redirect(login_url(exc.next_path))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_html(request):
            detail = exc.detail if exc.status_code != 404 else None
            return await error_page(request, exc.status_code, detail)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if wants_html(request):
            return await error_page(request, 422, "The form was not filled in as expected.")
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def server_error(request: Request, _exc: Exception) -> Response:
        # Starlette logs the exception and re-raises it after this response is sent.
        if wants_html(request):
            return await error_page(request, 500)
        return JSONResponse(
            {"detail": "Internal server error", "code": "internal_error"}, status_code=500
        )
