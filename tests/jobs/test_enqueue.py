"""Enqueue after commit: a job reaches the queue only if its transaction committed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, rollback
from docdigest.core.queue import connect_queue
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker

seen: list[int] = []


@job(timeout_s=5, subject="number:{n}")
async def record_number(jc: JobContext, n: int) -> None:
    seen.append(n)


async def test_committed_job_runs_once_and_ledger_says_succeeded(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker
) -> None:
    queue = await connect_queue(settings)
    seen.clear()
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, record_number, n=7)
        await commit(session)

    await run_worker(functions=[record_number.arq_function(settings)], cron_jobs=[])

    assert seen == [7]
    async with db() as session:
        stored = await session.get(JobRun, run.id)
        assert stored is not None
        assert stored.status == JobStatus.SUCCEEDED
        assert stored.attempts == 1
        assert stored.subject == "number:7"
        assert stored.finished_at is not None and stored.finished_at.tzinfo is not None
    await queue.aclose()


async def test_rolled_back_job_is_never_queued(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker
) -> None:
    queue = await connect_queue(settings)
    seen.clear()
    async with db(info={"queue": queue}) as session:
        await enqueue(session, record_number, n=1)
        await rollback(session)

    await run_worker(functions=[record_number.arq_function(settings)], cron_jobs=[])

    assert seen == []
    assert await queue.zcard(settings.queue_name) == 0
    async with db() as session:
        assert (await session.scalars(select(JobRun))).all() == []
    await queue.aclose()


async def test_the_returned_run_is_the_session_s_own_row(
    settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """The row is inserted at once (one statement, no flush), and the instance behaves
    like any loaded one: the session knows it, and a change to it is saved on commit."""
    async with db() as session:
        run = await enqueue(session, record_number, n=8)
        assert await session.get(JobRun, run.id) is run
        again = await enqueue(session, record_number, key="number:8", n=8)
        assert await enqueue(session, record_number, key="number:8", n=8) is again
        run.max_tries = 9
        await commit(session)

    async with db() as session:
        stored = await session.get(JobRun, run.id)
        assert stored is not None
        assert (stored.max_tries, stored.args, stored.status) == (9, {"n": 8}, JobStatus.QUEUED)
        keyed = (await session.scalars(select(JobRun).where(JobRun.key == "number:8"))).all()
        assert [k.id for k in keyed] == [again.id]
