"""Pooled PostgreSQL connections: checked before use only after sitting idle, and a
dead one is replaced before the request that checks it out sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from docdigest.core.db import create_engine
from docdigest.jobs.retry import is_transient

pytestmark = pytest.mark.postgres

IDLE_S = 1.0  # long enough that back-to-back requests never count as idle


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=1, ping_after_idle_s=IDLE_S)
    yield engine
    await engine.dispose()


@pytest.fixture
def pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per ping the pool sends."""
    dialect = engine.sync_engine.dialect
    sent: list[None] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: DBAPIConnection) -> bool:
        sent.append(None)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid: int = await conn.scalar(text("SELECT pg_backend_pid()"))
        return pid


async def terminate(postgres_url: str, pid: int) -> None:
    """What a server restart or an idle timeout does to one pooled connection."""
    admin = create_engine(postgres_url)
    try:
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, pings: list[None]
) -> None:
    first = await backend_pid(engine)
    for _ in range(5):
        assert await backend_pid(engine) == first  # the same pooled connection
    assert pings == []

    await asyncio.sleep(IDLE_S * 1.5)
    assert await backend_pid(engine) == first
    assert len(pings) == 1  # checked once after idling, and found alive


async def test_a_connection_that_died_while_idle_is_replaced_unseen(
    engine: AsyncEngine, pings: list[None], postgres_url: str
) -> None:
    first = await backend_pid(engine)
    await terminate(postgres_url, first)
    await asyncio.sleep(IDLE_S * 1.5)

    # The request still gets an answer, from a new server connection.
    replacement = await backend_pid(engine)
    assert replacement != first
    assert len(pings) == 1


async def test_a_connection_that_died_while_busy_fails_with_an_error_jobs_retry(
    postgres_url: str,
) -> None:
    """Within the idle window nothing is checked: a server that went down a moment ago
    fails the statement, with an error the job tier counts as transient, and the next
    request gets a new connection."""
    engine = create_engine(postgres_url, pool_size=1, ping_after_idle_s=60)
    try:
        first = await backend_pid(engine)
        await terminate(postgres_url, first)

        with pytest.raises(DBAPIError) as failed:
            await backend_pid(engine)
        assert failed.value.connection_invalidated
        assert is_transient(failed.value)

        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()
