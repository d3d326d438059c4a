"""What the job-tier tests share: waiting for a state, loading a job, running a worker,
watching Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.jobs.models import JobAttempt, JobRun
from docdigest.settings import Settings
from docdigest.worker import create_worker


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


async def status_is(db: async_sessionmaker[AsyncSession], job_id: str, status: str) -> bool:
    return (await load(db, job_id)).status == status


#: How long a stopping test worker lets its jobs in flight run on before cancelling them.
JOBS_END_WITHIN_S = 5


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[Worker]:
    """A worker running as in production (not in burst mode) until the block ends."""
    worker = create_worker(settings, handle_signals=False, **options)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Let the jobs in flight end, as a graceful stop does. `close()` cancels any
        # still running, and a job cancelled while its end is being written makes
        # `close()` itself raise CancelledError.
        if worker.tasks:
            await asyncio.wait(worker.tasks.values(), timeout=JOBS_END_WITHIN_S)
        await worker.close()


async def attempts_of(db: async_sessionmaker[AsyncSession], job_id: str) -> list[JobAttempt]:
    async with db() as session:
        query = select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.id)
        return list(await session.scalars(query))


async def commands_during(queue: ArqRedis, work: Callable[[], Awaitable[object]]) -> list[str]:
    """Every command Redis received from a client, not from a script, while `work()`
    ran (MONITOR). The work starts only once the monitor is on, so nothing is missed."""
    seen: list[str] = []
    async with queue.monitor() as monitor:  # on once entered (Redis answered OK)
        watching = asyncio.ensure_future(_collect(monitor, seen))
        try:
            await work()
            await asyncio.sleep(0.1)  # the last commands reach the monitor
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
    return seen


async def _collect(monitor: object, seen: list[str]) -> None:
    while True:
        info = await monitor.next_command()  # type: ignore[attr-defined]
        if info["client_type"] != "lua":
            seen.append(info["command"])
