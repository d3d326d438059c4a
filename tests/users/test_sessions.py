"""Logging in and out: cookie sessions, bearer tokens, expiry and 'log out everywhere'."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import utcnow
from docdigest.users.auth import SESSION_COOKIE
from docdigest.users.models import LoginSession
from docdigest.users.sessions import hash_token
from tests.users.steps import PASSWORD, log_in, sign_up


async def test_login_sets_a_safe_cookie_and_returns_a_bearer_token(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await sign_up(client)

    response = await client.post(
        "/api/login", json={"email": "alice@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["email"] == "alice@example.com"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={body['access_token']};")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    async with db() as session:
        stored = (await session.scalars(select(LoginSession))).all()
        assert [s.token_hash for s in stored] == [hash_token(body["access_token"])]
    me = await client.get("/api/me")
    assert me.status_code == 200 and me.json()["name"] == "Alice"


async def test_cookie_is_secure_over_https(app: object, client: httpx.AsyncClient) -> None:
    await sign_up(client)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as https:
        response = await https.post(
            "/api/login", json={"email": "alice@example.com", "password": PASSWORD}
        )
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


async def test_wrong_password_or_unknown_email_is_401(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    for email, password in [("alice@example.com", "wrong password!"), ("nobody@x.org", PASSWORD)]:
        response = await client.post("/api/login", json={"email": email, "password": password})
        assert response.status_code == 401
        assert response.json()["detail"] == "Wrong email or password."
        assert SESSION_COOKIE not in response.cookies
    assert (await client.get("/api/me")).status_code == 401


async def test_login_rotates_the_session_token(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await sign_up(client)
    first = (await log_in(client))["access_token"]

    second = (await log_in(client))["access_token"]

    assert first != second
    assert client.cookies[SESSION_COOKIE] == second
    old = await client.get("/api/me", headers={"Authorization": f"Bearer {first}"})
    assert old.status_code == 401
    async with db() as session:
        assert len((await session.scalars(select(LoginSession))).all()) == 1


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    login = await log_in(client)

    response = await client.post("/api/logout", headers={"X-CSRF-Token": login["csrf_token"]})

    assert response.status_code == 204
    assert SESSION_COOKIE not in client.cookies
    stale = await client.get(
        "/api/me", headers={"Authorization": f"Bearer {login['access_token']}"}
    )
    assert stale.status_code == 401
    assert stale.json()["detail"] == "not logged in"


async def test_logout_everywhere_ends_every_session(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    await sign_up(client)
    phone = await log_in(other_client)
    laptop = await log_in(client)

    response = await client.post(
        "/api/logout-everywhere", headers={"X-CSRF-Token": laptop["csrf_token"]}
    )

    assert response.status_code == 204
    assert (await client.get("/api/me")).status_code == 401
    assert (await other_client.get("/api/me")).status_code == 401
    assert phone["access_token"] != laptop["access_token"]


async def test_expired_session_is_logged_out(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await sign_up(client)
    await log_in(client)
    assert (await client.get("/api/me")).status_code == 200

    async with db() as session:
        await session.execute(
            update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    response = await client.get("/api/me")
    assert response.status_code == 401

    await log_in(client)  # the expired row is cleared away at the next login
    async with db() as session:
        assert len((await session.scalars(select(LoginSession))).all()) == 1
