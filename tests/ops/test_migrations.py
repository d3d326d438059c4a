"""Migrations: from empty to head and back, and head matches the models exactly.

If test_head_matches_the_models fails, a model changed without a migration:
run `make migration m="what changed"` and review the generated revision.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from docdigest.migrate import downgrade, upgrade
from docdigest.models import Base
from docdigest.settings import Settings
from tests.ops.conftest import DOCDIGEST

MODEL_TABLES = set(Base.metadata.tables)


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        result = await conn.run_sync(fn)
    await engine.dispose()
    return result


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _migrate(action: Any, url: str) -> None:
    # The migration runner drives its own event loop, as the CLI does.
    await asyncio.to_thread(action, Settings(database_url=url))


async def test_upgrade_from_empty_and_downgrade_to_empty(empty_database_url: str) -> None:
    await _migrate(upgrade, empty_database_url)
    assert await _inspect(empty_database_url, _tables) >= MODEL_TABLES

    await _migrate(downgrade, empty_database_url)
    assert await _inspect(empty_database_url, _tables) <= {"alembic_version"}


async def test_head_matches_the_models(empty_database_url: str) -> None:
    await _migrate(upgrade, empty_database_url)
    differences = await _inspect(empty_database_url, _differences)
    assert differences == [], "models changed without a migration (see this file's docstring)"


async def test_two_migrate_commands_at_once_both_succeed(empty_database_url: str) -> None:
    env = {"DOCDIGEST_DATABASE_URL": empty_database_url}
    commands = [
        await asyncio.create_subprocess_exec(
            DOCDIGEST,
            "migrate",
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [await c.communicate() for c in commands]
    assert [c.returncode for c in commands] == [0, 0], outputs
    assert await _inspect(empty_database_url, _tables) >= MODEL_TABLES
    assert await _inspect(empty_database_url, _differences) == []
