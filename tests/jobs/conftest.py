"""What the job-tier tests share: a queue connection and a way to wait for a state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.jobs.models import JobAttempt, JobRun


async def eventually(check: Callable[[], Awaitable[Any]], *, within_s: float = 15) -> Any:
    """Wait until `check()` returns something truthy (a state, not a speed, is asserted)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r} after {within_s} s")
        await asyncio.sleep(0.02)


async def load(db: async_sessionmaker[AsyncSession], job_id: str) -> JobRun:
    async with db() as session:
        run = await session.get(JobRun, job_id)
        assert run is not None
        return run


async def attempts_of(db: async_sessionmaker[AsyncSession], job_id: str) -> list[JobAttempt]:
    async with db() as session:
        query = select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.id)
        return list(await session.scalars(query))
