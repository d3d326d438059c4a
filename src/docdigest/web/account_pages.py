"""Sign up, log in and log out as HTML forms; errors go back onto the form, never the password."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from docdigest.core.db import SessionDep
from docdigest.core.errors import AppError
from docdigest.users import service
from docdigest.users.auth import (
    SESSION_COOKIE,
    CsrfProtected,
    OptionalUser,
    clear_session_cookie,
    open_session,
    set_session_cookie,
)
from docdigest.users.sessions import close_session
from docdigest.web.deps import redirect, render, safe_next

router = APIRouter(include_in_schema=False)

NOTICES = {
    "logged-out": "You are logged out.",
    "everywhere": "You are logged out on every device.",
    "deleted": "Your account and all its documents are deleted.",
    "password": "Your password is changed. Log in again on your other devices.",
}


def field_errors(exc: AppError) -> dict[str, str]:
    errors = exc.detail.get("errors")
    return dict(errors) if isinstance(errors, dict) else {}


def form_message(exc: AppError) -> str | None:
    """The banner above a form: only when no field carries the error itself."""
    return None if field_errors(exc) else exc.message


@router.get("/")
async def home(user: OptionalUser) -> RedirectResponse:
    return RedirectResponse("/documents" if user else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, user: OptionalUser, next: str = "", notice: str = ""
) -> Response:
    if user is not None:
        return redirect(safe_next(next))
    return render(request, "login.html", email="", next=next, errors={}, notice=NOTICES.get(notice))


@router.post("/login", dependencies=[CsrfProtected])
async def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    context: dict[str, Any] = {"email": email, "next": next, "errors": {}}
    if not email.strip() or not password:
        errors = {}
        if not email.strip():
            errors["email"] = "Enter your email address."
        if not password:
            errors["password"] = "Enter your password."
        return render(request, "login.html", status_code=422, **context | {"errors": errors})
    ip = request.client.host if request.client else "unknown"
    try:
        user = await service.authenticate(session, email=email, password=password, ip=ip)
    except AppError as exc:
        return render(
            request, "login.html", status_code=exc.status_code, message=exc.message, **context
        )
    # A new token at every login (session fixation); the old one, if any, ends here.
    old_token = request.cookies.get(SESSION_COOKIE)
    if old_token:
        await close_session(session, old_token)
    token = await open_session(session, user)
    response = redirect(safe_next(next))
    set_session_cookie(response, request, token)
    return response


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request, user: OptionalUser) -> Response:
    if user is not None:
        return redirect("/documents")
    return render(request, "signup.html", name="", email="", errors={})


@router.post("/signup", dependencies=[CsrfProtected])
async def signup(
    request: Request,
    session: SessionDep,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    try:
        user = await service.sign_up(session, email=email, name=name, password=password)
    except AppError as exc:
        return render(
            request,
            "signup.html",
            status_code=exc.status_code,
            name=name,
            email=email,
            errors=field_errors(exc),
            message=form_message(exc),
        )
    old_token = request.cookies.get(SESSION_COOKIE)
    if old_token:
        await close_session(session, old_token)
    token = await open_session(session, user)
    response = redirect("/upload")
    set_session_cookie(response, request, token)
    return response


@router.post("/logout", dependencies=[CsrfProtected])
async def logout(request: Request, session: SessionDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await close_session(session, token)
    response = redirect("/login?notice=logged-out")
    clear_session_cookie(response, request)
    return response
