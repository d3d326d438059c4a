"""Apply the Alembic migrations once, even when several processes start at the same time.

Every process of a deploy may run `docdigest migrate`; a database-wide lock
(a PostgreSQL advisory lock, or a file lock beside the SQLite file) makes the
second wait and then find nothing to do.
"""

from __future__ import annotations

import asyncio
import fcntl
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from docdigest.settings import Settings

#: Any fixed 64-bit number works; derived from the name so it reads as ours in pg_locks.
ADVISORY_LOCK_KEY = zlib.crc32(b"docdigest:migrate")


def find_alembic_ini() -> Path:
    """alembic.ini beside the source tree (a checkout), else in the working directory (images)."""
    candidates = [Path(__file__).resolve().parents[2] / "alembic.ini", Path.cwd() / "alembic.ini"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "alembic.ini not found beside the source tree nor in the current directory"
    )


def alembic_config(settings: Settings) -> Config:
    config = Config(str(find_alembic_ini()))
    config.attributes["database_url"] = settings.database_url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    config = alembic_config(settings)
    with _sqlite_file_lock(settings.database_url):
        asyncio.run(_run_locked(config, settings.database_url, command.upgrade, revision))


def downgrade(settings: Settings, revision: str = "base") -> None:
    config = alembic_config(settings)
    with _sqlite_file_lock(settings.database_url):
        asyncio.run(_run_locked(config, settings.database_url, command.downgrade, revision))


Action = Callable[[Config, str], None]


async def _run_locked(config: Config, url: str, action: Action, revision: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    postgres = engine.dialect.name == "postgresql"

    def migrate(connection: Connection) -> None:
        config.attributes["connection"] = connection
        action(config, revision)

    try:
        async with engine.connect() as connection:
            if postgres:
                # Session-level: held across the migration's own transactions.
                await connection.execute(
                    text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
                )
                await connection.commit()
            try:
                await connection.run_sync(migrate)
                await connection.commit()
            finally:
                if postgres:
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY}
                    )
                    await connection.commit()
    finally:
        await engine.dispose()


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:":
        yield
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Path(f"{path}.migrate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
