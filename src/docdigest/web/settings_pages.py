"""The settings page: profile and digest, password, access tokens, sessions, account deletion."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import SessionDep
from docdigest.core.errors import AppError, NotFound
from docdigest.documents.storage import Storage
from docdigest.users import service
from docdigest.users.auth import SESSION_COOKIE, clear_session_cookie
from docdigest.users.models import User
from docdigest.users.sessions import (
    close_all_sessions,
    create_access_token,
    list_access_tokens,
    revoke_access_token,
)
from docdigest.web.account_pages import field_errors, form_message
from docdigest.web.deps import PageUser, redirect, render

router = APIRouter(prefix="/settings", include_in_schema=False)

SAVED = {
    "profile": "Your profile is saved.",
    "password": "Your password is changed; your other sessions are logged out.",
    "revoked": "The token is revoked.",
}


@cache
def timezones() -> list[str]:
    return sorted(available_timezones())


async def settings_page(
    request: Request,
    session: AsyncSession,
    user: User,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    tokens = await list_access_tokens(session, user.id)
    defaults: dict[str, Any] = {"errors": {}, "section": None, "message": None, "form": {}}
    return render(
        request,
        "settings.html",
        status_code=status_code,
        user=user,
        tokens=tokens,
        timezones=timezones(),
        **defaults | context,
    )


def form_failed(exc: AppError, section: str, **form: Any) -> dict[str, Any]:
    return {
        "status_code": exc.status_code,
        "section": section,
        "errors": field_errors(exc),
        "message": form_message(exc),
        "form": form,
    }


@router.get("", response_class=HTMLResponse)
async def show(request: Request, session: SessionDep, user: PageUser, saved: str = "") -> Response:
    return await settings_page(request, session, user, notice=SAVED.get(saved))


@router.post("/profile")
async def save_profile(
    request: Request,
    session: SessionDep,
    user: PageUser,
    name: Annotated[str, Form()] = "",
    digest_hour: Annotated[int, Form()] = 9,
    timezone: Annotated[str, Form()] = "UTC",
    digest_opt_in: Annotated[bool, Form()] = False,
) -> Response:
    try:
        await service.update_profile(
            session,
            user,
            name=name,
            digest_opt_in=digest_opt_in,
            digest_hour=digest_hour,
            timezone=timezone,
        )
    except AppError as exc:
        form = {"name": name, "digest_hour": digest_hour, "timezone": timezone}
        return await settings_page(request, session, user, **form_failed(exc, "profile", **form))
    return redirect("/settings?saved=profile")


@router.post("/password")
async def change_password(
    request: Request,
    session: SessionDep,
    user: PageUser,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    try:
        await service.change_password(
            session,
            user,
            current_password=current_password,
            new_password=new_password,
            keep_token=request.cookies.get(SESSION_COOKIE),
        )
    except AppError as exc:
        return await settings_page(request, session, user, **form_failed(exc, "password"))
    return redirect("/settings?saved=password")


@router.post("/tokens")
async def create_token(
    request: Request,
    session: SessionDep,
    user: PageUser,
    token_name: Annotated[str, Form()] = "",
) -> Response:
    token_name = token_name.strip()
    if not token_name or len(token_name) > 100:
        errors = {"token_name": "Give the token a name of 1 to 100 characters."}
        return await settings_page(
            request, session, user, status_code=422, section="tokens", errors=errors
        )
    pat, token = await create_access_token(session, user, token_name)
    # Shown once, on this response only: we keep nothing but its hash.
    return await settings_page(request, session, user, new_token=token, new_token_name=pat.name)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(session: SessionDep, user: PageUser, token_id: int) -> Response:
    if not await revoke_access_token(session, user.id, token_id):
        raise NotFound("No such token.")
    return redirect("/settings?saved=revoked")


@router.post("/logout-everywhere")
async def logout_everywhere(request: Request, session: SessionDep, user: PageUser) -> Response:
    await close_all_sessions(session, user.id)
    response = redirect("/login?notice=everywhere")
    clear_session_cookie(response, request)
    return response


@router.post("/delete-account")
async def delete_account(
    request: Request,
    session: SessionDep,
    user: PageUser,
    password: Annotated[str, Form()] = "",
    confirm: Annotated[bool, Form()] = False,
) -> Response:
    if not confirm:
        errors = {"confirm": "Tick the box to confirm that everything will be deleted."}
        return await settings_page(
            request, session, user, status_code=422, section="delete", errors=errors
        )
    storage = Storage.from_settings(request.app.state.settings)
    try:
        await service.delete_account(session, user, password=password, storage=storage)
    except AppError as exc:
        return await settings_page(request, session, user, **form_failed(exc, "delete"))
    response = redirect("/login?notice=deleted")
    clear_session_cookie(response, request)
    return response
