"""SQLite's WAL checkpoints run beside a process's writers, not by the commit that
happens to take the log past its threshold, and the log still starts over."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from docdigest.core.checkpoints import TASK_NAME, WalCheckpoints
from docdigest.core.db import create_engine
from docdigest.core.queue import connect_queue
from docdigest.core.sqlite import log_copied
from docdigest.main import create_app
from docdigest.settings import Settings
from docdigest.worker import worker_options

#: Written in commits of one row each: about 1,500 pages, past the 1,000 pages at
#: which a commit checkpoints by SQLite's default.
ROWS, ROW_BYTES = 200, 30_000
MB = 1024 * 1024


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wal.db"


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
    yield engine
    await engine.dispose()


@pytest.fixture
async def idle_checkpoints(engine: AsyncEngine) -> AsyncIterator[WalCheckpoints]:
    """Checkpoints started for `engine`, whose own turn does not come in a test."""
    checkpoints = WalCheckpoints.start_for(engine, every_s=3600)
    assert checkpoints is not None
    yield checkpoints
    await checkpoints.stop()


async def _write(engine: AsyncEngine, rows: int = ROWS) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS blobs (data BLOB)"))
    for _ in range(rows):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": ROW_BYTES})


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _wal(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + "-wal")


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


def _checkpointing() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == TASK_NAME and not t.done()]


async def _autocheckpoint(engine: AsyncEngine) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar()


async def test_by_default_a_commit_copies_the_log_into_the_database(
    engine: AsyncEngine, db_path: Path
) -> None:
    await _write(engine)
    assert _size(db_path) > 2 * MB


async def test_with_checkpoints_beside_them_the_commits_leave_the_log_alone(
    engine: AsyncEngine, db_path: Path, idle_checkpoints: WalCheckpoints
) -> None:
    await _write(engine)
    assert _size(db_path) < MB
    assert _size(_wal(db_path)) > 4 * MB
    assert await _autocheckpoint(engine) == 0


async def test_a_checkpoint_copies_the_log_and_the_next_writer_starts_it_over(
    engine: AsyncEngine, db_path: Path, idle_checkpoints: WalCheckpoints
) -> None:
    await _write(engine)
    wal_size = _size(_wal(db_path))
    await idle_checkpoints.checkpoint()
    assert _size(db_path) > 4 * MB
    await _write(engine)
    assert _size(_wal(db_path)) <= wal_size


async def test_the_first_writer_after_a_copy_finishes_it_in_its_own_hand_off(
    engine: AsyncEngine,
    db_path: Path,
    idle_checkpoints: WalCheckpoints,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    original: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any) -> Any:
        calls.append(fn.__name__)
        return await original(self, fn, *a)

    await _write(engine)
    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    await _write(engine, rows=1)
    assert _size(db_path) < MB
    plain = list(calls)
    calls.clear()
    log_copied(idle_checkpoints.database)  # as a background checkpoint does
    await _write(engine, rows=1)
    assert _size(db_path) > 4 * MB
    assert calls == plain


async def test_the_log_stays_bounded_while_writes_go_on(
    engine: AsyncEngine, db_path: Path, idle_checkpoints: WalCheckpoints
) -> None:
    # A passive checkpoint alone never finds the log all copied while commits keep
    # coming, so the log would grow to everything written (about 30 MB here). Each
    # round's checkpoint runs beside that round's commits, and the round's writes are
    # fixed, so the bound does not hang on how long a checkpoint takes the disk.
    for _ in range(16):
        # The first writer after a copy, with no checkpoint under way to collide with.
        await _write(engine, rows=1)
        checkpoint = asyncio.create_task(idle_checkpoints.checkpoint())
        await _write(engine, rows=ROWS // 4)
        await checkpoint
    assert _size(db_path) > 12 * MB
    # A round's commits, about 1.5 MB, and what the one before left.
    assert _size(_wal(db_path)) < 4 * MB


async def test_a_failed_checkpoint_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_database = tmp_path / "garbage.db"
    not_a_database.write_bytes(b"this is no SQLite file" * 200)
    checkpoints = WalCheckpoints(str(not_a_database), every_s=0.02)
    with caplog.at_level(logging.WARNING, logger="docdigest.core.checkpoints"):
        checkpoints.start()
        try:
            await _until(lambda: len(caplog.records) >= 2)
            assert _checkpointing(), "the checkpoints go on after a failure"
        finally:
            await checkpoints.stop()
    assert caplog.records[0].getMessage() == "WAL checkpoint failed"
    assert "not a database" in caplog.records[0].__dict__["error"]


async def test_only_an_sqlite_file_gets_checkpoints() -> None:
    memory = create_async_engine("sqlite+aiosqlite:///:memory:")
    server = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert WalCheckpoints.start_for(memory) is None
    assert WalCheckpoints.start_for(server) is None
    assert _checkpointing() == []
    await memory.dispose()
    await server.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_web_app_checkpoints_beside_its_writers_while_it_runs(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert len(_checkpointing()) == 1
        assert await _autocheckpoint(app.state.engine) == 0
    assert _checkpointing() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_worker_checkpoints_beside_its_writers_while_it_runs(settings: Settings) -> None:
    options = worker_options(settings)
    ctx: dict[str, Any] = {"redis": await connect_queue(settings)}
    await options["on_startup"](ctx)
    try:
        assert len(_checkpointing()) == 1
        assert await _autocheckpoint(ctx["engine"]) == 0
    finally:
        await options["on_shutdown"](ctx)
        await ctx["redis"].aclose()
    assert _checkpointing() == []
