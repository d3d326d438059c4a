"""Accounts API: sign up, log in and out, the account's settings and access tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from docdigest.core.db import SessionDep
from docdigest.core.errors import NotFound
from docdigest.documents.storage import Storage
from docdigest.users import service, sessions
from docdigest.users.auth import (
    SESSION_COOKIE,
    CurrentUser,
    clear_session_cookie,
    request_token,
    set_session_cookie,
)
from docdigest.users.csrf import csrf_token_for_session
from docdigest.users.schemas import (
    AccountDeleteIn,
    LoginIn,
    LoginOut,
    NewTokenOut,
    PasswordChangeIn,
    ProfileIn,
    SignupIn,
    TokenIn,
    TokenOut,
    UserOut,
)

router = APIRouter(prefix="/api", tags=["users"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: SignupIn, session: SessionDep) -> UserOut:
    user = await service.sign_up(session, email=body.email, name=body.name, password=body.password)
    return UserOut.model_validate(user)


@router.post("/login")
async def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep
) -> LoginOut:
    user = await service.authenticate(
        session, email=body.email, password=body.password, ip=client_ip(request)
    )
    # A fresh token at every login (against session fixation); the old one ends here.
    old_token = request.cookies.get(SESSION_COOKIE)
    if old_token:
        await sessions.close_session(session, old_token)
    token = await sessions.open_session(session, user)
    set_session_cookie(response, request, token)
    return LoginOut(
        access_token=token,
        csrf_token=csrf_token_for_session(request.app.state.settings, token),
        user=UserOut.model_validate(user),
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    _user: CurrentUser, request: Request, response: Response, session: SessionDep
) -> None:
    token = request_token(request)
    if token:
        await sessions.close_session(session, token)
    clear_session_cookie(response, request)


@router.post("/logout-everywhere", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(
    user: CurrentUser, request: Request, response: Response, session: SessionDep
) -> None:
    await sessions.close_all_sessions(session, user.id)
    clear_session_cookie(response, request)


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch("/me")
async def update_me(body: ProfileIn, user: CurrentUser, session: SessionDep) -> UserOut:
    await service.update_profile(session, user, **body.model_dump(exclude_unset=True))
    return UserOut.model_validate(user)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChangeIn, user: CurrentUser, request: Request, session: SessionDep
) -> None:
    await service.change_password(
        session,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_token=request_token(request),
    )


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(
    body: AccountDeleteIn,
    user: CurrentUser,
    request: Request,
    response: Response,
    session: SessionDep,
) -> None:
    storage = Storage.from_settings(request.app.state.settings)
    await service.delete_account(session, user, password=body.password, storage=storage)
    clear_session_cookie(response, request)


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenIn, user: CurrentUser, session: SessionDep) -> NewTokenOut:
    pat, token = await sessions.create_access_token(session, user, body.name.strip())
    return NewTokenOut(
        id=pat.id,
        name=pat.name,
        prefix=pat.prefix,
        created_at=pat.created_at,
        last_used_at=pat.last_used_at,
        token=token,
    )


@router.get("/tokens")
async def list_tokens(user: CurrentUser, session: SessionDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in await sessions.list_access_tokens(session, user.id)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: int, user: CurrentUser, session: SessionDep) -> None:
    if not await sessions.revoke_access_token(session, user.id, token_id):
        raise NotFound("No such token.")
