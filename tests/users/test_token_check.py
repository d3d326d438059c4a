"""Tokens that arrive together are checked in one lookup, and each still gets its own
answer: its own user, nobody for a token that is unknown, expired or revoked, and an
access token's last use recorded."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, utcnow
from docdigest.users.models import AccessToken, LoginSession, User
from docdigest.users.sessions import (
    LAST_USED_PRECISION,
    TokenCheck,
    create_access_token,
    hash_token,
    open_session,
)
from tests.conftest import record_statements
from tests.documents.conftest import make_account


@pytest.fixture
def token_queries(db: async_sessionmaker[AsyncSession]) -> list[str]:
    """Every lookup of a login session or access token through `db`."""
    return record_statements(db.kw["bind"].sync_engine, "SELECT", "login_sessions", "access_tokens")


async def new_user(session: AsyncSession, name: str) -> User:
    user = User(email=f"{name.lower()}@example.com", name=name, password_hash="-")
    session.add(user)
    await session.flush()
    return user


async def test_tokens_arriving_together_share_one_lookup_and_each_gets_its_own_user(
    db: async_sessionmaker[AsyncSession], token_queries: list[str]
) -> None:
    async with db() as session:
        alice, bob, carol = [await new_user(session, n) for n in ("Alice", "Bob", "Carol")]
        alices = await open_session(session, alice)
        _, bobs = await create_access_token(session, bob, "script")
        carols = await open_session(session, carol)
        await session.execute(
            update(LoginSession)
            .where(LoginSession.token_hash == hash_token(carols))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await commit(session)
    check = TokenCheck(db.kw["bind"])
    tokens = [alices, bobs, carols, "not-a-token", "ddp_not-a-token-either", alices]

    users = await asyncio.gather(*(check.user(token) for token in tokens))

    assert [u.name if u else None for u in users] == ["Alice", "Bob", None, None, None, "Alice"]
    # One query for the login sessions and one for the access tokens, not one per token.
    assert len(token_queries) == 2
    async with db() as session:
        pat = await session.scalar(select(AccessToken))
    assert pat is not None and pat.last_used_at is not None  # its use was recorded


async def test_a_lone_token_is_checked_at_once(
    db: async_sessionmaker[AsyncSession], token_queries: list[str]
) -> None:
    async with db() as session:
        token = await open_session(session, await new_user(session, "Alice"))
        await commit(session)
    check = TokenCheck(db.kw["bind"])

    assert [(await check.user(token)) is not None for _ in range(3)] == [True] * 3
    assert len(token_queries) == 3  # nothing is kept between checks


async def test_an_access_tokens_last_use_is_written_only_once_it_is_stale(
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with db() as session:
        pat, token = await create_access_token(session, await new_user(session, "Alice"), "ci")
        await commit(session)
    writes = record_statements(db.kw["bind"].sync_engine, "UPDATE", "access_tokens")
    check = TokenCheck(db.kw["bind"])

    async def last_used() -> datetime | None:
        async with db() as session:
            return await session.scalar(
                select(AccessToken.last_used_at).where(AccessToken.id == pat.id)
            )

    assert await check.user(token) is not None
    first = await last_used()
    assert first is not None and len(writes) == 1  # never used before: written
    assert await check.user(token) is not None
    assert await last_used() == first and len(writes) == 1  # a moment later: left alone

    stale = utcnow() - LAST_USED_PRECISION - timedelta(seconds=1)
    async with db() as session:
        await session.execute(
            update(AccessToken).where(AccessToken.id == pat.id).values(last_used_at=stale)
        )
        await commit(session)
    writes.clear()
    assert await check.user(token) is not None
    assert (await last_used() or stale) > stale and len(writes) == 1  # stale: written again


async def test_requests_arriving_together_share_lookups_and_each_sees_its_own_account(
    app: FastAPI, client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = await make_account(db, "Alice"), await make_account(db, "Bob")
    lookups = record_statements(app.state.engine.sync_engine, "SELECT", "login_sessions")
    requests = 16

    answers = await asyncio.gather(
        *(client.get("/api/me", headers=(alice, bob)[n % 2].headers) for n in range(requests))
    )

    assert [a.status_code for a in answers] == [200] * requests
    assert [a.json()["email"] for a in answers] == [alice.email, bob.email] * (requests // 2)
    assert 1 <= len(lookups) < requests


async def test_a_route_can_change_the_user_it_was_given(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    """The check's users are shared between requests; a route changes its own copy."""
    alice = await make_account(db, "Alice")

    changed, seen = await asyncio.gather(
        client.patch("/api/me", json={"name": "Alice B."}, headers=alice.headers),
        client.get("/api/me", headers=alice.headers),
    )

    assert changed.status_code == 200 and changed.json()["name"] == "Alice B."
    assert seen.status_code == 200 and seen.json()["name"] in {"Alice", "Alice B."}
    assert (await client.get("/api/me", headers=alice.headers)).json()["name"] == "Alice B."
    async with db() as session:
        stored = await session.scalar(select(User).where(User.id == alice.id))
    assert stored is not None and stored.name == "Alice B."
