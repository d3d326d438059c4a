"""Signing up: the API answers at once, the welcome mail follows from the worker."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.jobs.models import JobRun, JobStatus
from docdigest.users.models import User
from tests.conftest import RunWorker, SmtpCatcher
from tests.users.steps import PASSWORD, sign_up


async def test_signup_answers_before_the_welcome_mail_which_arrives_once(
    client: httpx.AsyncClient,
    smtp: SmtpCatcher,
    run_worker: RunWorker,
    db: async_sessionmaker[AsyncSession],
) -> None:
    user = await sign_up(client, email="Alice@Example.com")

    assert user["email"] == "alice@example.com"
    assert user["name"] == "Alice"
    assert "password" not in str(user) and "hash" not in str(user)
    assert smtp.messages == []
    async with db() as session:
        job = await session.scalar(select(JobRun).where(JobRun.key == f"welcome:{user['id']}"))
        assert job is not None and job.status == JobStatus.QUEUED

    await run_worker()

    assert smtp.subjects() == ["Welcome to docdigest, Alice"]
    welcome = smtp.messages[0]
    assert welcome["To"] == "alice@example.com"
    assert welcome.get_body(("plain",)) is not None
    assert welcome.get_body(("html",)) is not None
    async with db() as session:
        stored = await session.scalar(select(User).where(User.id == user["id"]))
        assert stored is not None and stored.password_hash.startswith("$argon2")


async def test_same_email_twice_is_a_clear_409(client: httpx.AsyncClient) -> None:
    await sign_up(client, email="bob@example.com", name="Bob")

    again = await client.post(
        "/api/signup", json={"email": "BOB@example.com", "name": "Bob 2", "password": PASSWORD}
    )

    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


async def test_invalid_signups_are_422_with_a_message_per_field(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    cases = [
        ({"email": "not-an-email", "name": "A", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "name": "A", "password": "short"}, "password"),
        (
            {
                "email": "long.enough@example.com",
                "name": "A",
                "password": "long.enough@example.com",
            },
            "password",
        ),
        ({"email": "a@example.com", "name": "  ", "password": PASSWORD}, "name"),
    ]
    for body, field in cases:
        response = await client.post("/api/signup", json=body)
        assert response.status_code == 422, body
        errors = response.json()["errors"]
        assert list(errors) == [field], errors
        assert errors[field]

    async with db() as session:
        assert (await session.scalars(select(User))).all() == []
