"""People with and without admin rights, and ledger rows in known states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, utcnow
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.users.auth import open_session
from docdigest.users.models import User


@dataclass
class People:
    admin: dict[str, str]
    user: dict[str, str]


@pytest.fixture
async def people(db: async_sessionmaker[AsyncSession]) -> People:
    """Bearer headers for an admin and for an ordinary user."""
    async with db() as session:
        admin = User(email="ops@example.com", name="Ops", password_hash="x", is_admin=True)
        user = User(email="user@example.com", name="User", password_hash="x")
        session.add_all([admin, user])
        await session.flush()
        admin_token = await open_session(session, admin)
        user_token = await open_session(session, user)
        await commit(session)
    return People(
        admin={"Authorization": f"Bearer {admin_token}"},
        user={"Authorization": f"Bearer {user_token}"},
    )


async def add_runs(db: async_sessionmaker[AsyncSession], *runs: JobRun) -> None:
    async with db() as session:
        session.add_all(runs)
        await commit(session)


def ledger_row(job_id: str, status: JobStatus, *, minutes_ago: int = 0, **fields: object) -> JobRun:
    values: dict[str, object] = {
        "function": "record_number",
        "args": {"n": 1},
        "max_tries": 3,
        "attempts": 1,
        "enqueued_at": utcnow() - timedelta(minutes=minutes_ago),
    } | fields
    return JobRun(id=job_id, status=status, **values)
