"""`docdigest users make-admin EMAIL`, run as an operator would."""

from __future__ import annotations

import subprocess
import sys

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.settings import Settings
from docdigest.users.models import User
from tests.conftest import run_command
from tests.users.steps import sign_up


async def test_make_admin_gives_and_takes_admin_rights(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, email="ops@example.com", name="Ops")
    env = {"DOCDIGEST_DATABASE_URL": settings.database_url}
    command = [sys.executable, "-m", "docdigest", "users", "make-admin"]

    output = run_command(*command, "OPS@example.com", env=env)

    assert "ops@example.com is now an admin." in output
    async with db() as session:
        user = await session.scalar(select(User))
        assert user is not None and user.is_admin

    run_command(*command, "ops@example.com", "--revoke", env=env)
    async with db() as session:
        user = await session.scalar(select(User))
        assert user is not None and not user.is_admin

    missing = subprocess.run(
        [*command, "nobody@example.com"], capture_output=True, text=True, env=env, check=False
    )
    assert missing.returncode == 1
    assert "No account with the email nobody@example.com." in missing.stderr
