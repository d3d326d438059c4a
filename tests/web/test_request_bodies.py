"""A form's or a JSON body's size is capped before the framework buffers it; uploads,
which stream to disk, keep their own cap (tests/documents/test_upload.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.main import MAX_BODY_BYTES
from docdigest.users.models import User
from tests.web.conftest import HTML, PASSWORD, MakeClient, csrf_of


async def users(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_a_json_body_over_the_cap_is_413_and_signs_nobody_up(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    signup = {"email": "ada@example.com", "name": "x" * MAX_BODY_BYTES, "password": PASSWORD}
    response = await client.post("/api/signup", json=signup)

    # A declared length over the cap is answered before the app runs, in plain text.
    assert response.status_code == 413
    assert response.text == "Content Too Large"
    assert await users(db) == 0


async def test_a_body_of_unknown_length_is_cut_off_at_the_cap(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    """Sent in chunks with no Content-Length, the body is read only until it passes the
    cap: the rest is never taken from the client."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "ada@example.com", "password": "' + PASSWORD.encode() + b'", "name": "'
        for _ in range(50):
            sent += 1
            yield b"x" * (MAX_BODY_BYTES // 4)
        yield b'"}'

    response = await client.post(
        "/api/signup", content=body(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["detail"] == "Content Too Large"
    assert sent <= 5
    assert await users(db) == 0


async def test_a_browser_form_over_the_cap_is_413(make_client: MakeClient) -> None:
    browser = await make_client()
    page = await browser.get("/login", headers=HTML)
    form = {
        "csrf_token": csrf_of(page.text),
        "email": "ada@example.com",
        "password": "x" * MAX_BODY_BYTES,
    }
    response = await browser.post("/login", data=form, headers=HTML)

    assert response.status_code == 413
    assert response.text == "Content Too Large"


async def test_bodies_under_the_cap_are_read_as_before(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    name = "x" * 200
    signup = {"email": "ada@example.com", "name": name, "password": PASSWORD}
    response = await client.post("/api/signup", json=signup)

    assert response.status_code == 201, response.text
    assert await users(db) == 1
