"""The SQLite dialect: one hand-off to the connection's thread per statement, and a
process's writers queued on a lock instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from docdigest.core.db import create_engine
from docdigest.core.sqlite import lean_url

WRITERS = 8


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'lean.db'}"


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What each aiosqlite connection was asked to run in its thread, by name."""
    counts: Counter[str] = Counter()
    original: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any) -> Any:
        counts[fn.__name__] += 1
        return await original(self, fn, *a)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return counts


async def _table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    await _table(engine)
    yield engine
    await engine.dispose()


async def test_results_are_what_sqlite_returns(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(
            text("INSERT INTO notes (body) VALUES (:body)"), [{"body": "a"}, {"body": "b"}]
        )
        assert inserted.rowcount == 2
        returned = await conn.execute(
            text("INSERT INTO notes (body) VALUES ('c') RETURNING id, body")
        )
        assert returned.all() == [(3, "c")]
        updated = await conn.execute(text("UPDATE notes SET body = upper(body)"))
        assert updated.rowcount == 3
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, body FROM notes ORDER BY id"))).all()
        assert rows == [(1, "A"), (2, "B"), (3, "C")]
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))


async def test_a_statement_is_one_hand_off_and_an_idle_end_is_none(
    engine: AsyncEngine, hand_offs: Counter[str]
) -> None:
    async with engine.connect() as conn:  # connection already pooled by the fixture
        await conn.execute(text("SELECT count(*) FROM notes"))
        await conn.rollback()
    # SQLAlchemy's own adapter: open a cursor, execute, fetch, close, then ROLLBACK.
    assert sum(hand_offs.values()) == 1

    hand_offs.clear()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO notes (body) VALUES ('x')"))
    assert sum(hand_offs.values()) == 2  # the INSERT, then the COMMIT


async def _concurrent_writers(engine: AsyncEngine) -> list[BaseException | None]:
    """WRITERS tasks, each holding a write transaction open across an await."""

    async def write(n: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO notes (body) VALUES (:n)"), {"n": str(n)})
            await asyncio.sleep(0.01)

    return await asyncio.gather(*(write(n) for n in range(WRITERS)), return_exceptions=True)


async def test_writers_in_one_process_queue_instead_of_meeting_a_locked_database(
    sqlite_url: str,
) -> None:
    # No busy timeout at all: any writer that found the database locked would fail.
    engine = create_async_engine(lean_url(sqlite_url), connect_args={"timeout": 0})
    await _table(engine)
    try:
        outcomes = await _concurrent_writers(engine)
        assert outcomes == [None] * WRITERS
        async with engine.connect() as conn:
            count = await conn.scalar(text("SELECT count(*) FROM notes"))
        assert count == WRITERS
    finally:
        await engine.dispose()


async def test_without_the_queue_the_same_writers_collide(sqlite_url: str) -> None:
    """The control for the test above: SQLAlchemy's stock dialect, same load."""
    engine = create_async_engine(sqlite_url, connect_args={"timeout": 0})
    await _table(engine)
    try:
        outcomes = await _concurrent_writers(engine)
        assert any("database is locked" in str(o) for o in outcomes)
    finally:
        await engine.dispose()


async def test_a_failed_write_gives_the_lock_back(engine: AsyncEngine) -> None:
    with pytest.raises(OperationalError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO missing (body) VALUES ('x')"))
    async with engine.begin() as conn:  # would wait forever if the lock were still held
        await asyncio.wait_for(
            conn.execute(text("INSERT INTO notes (body) VALUES ('after')")), timeout=10
        )
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO notes (body) VALUES ('y')"))
        await conn.rollback()
    async with engine.connect() as conn:
        bodies = (await conn.execute(text("SELECT body FROM notes"))).scalars().all()
    assert bodies == ["after"]
