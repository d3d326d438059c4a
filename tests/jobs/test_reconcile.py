"""The reconciler makes Redis agree with the ledger: lost jobs come back, nothing runs twice."""

from __future__ import annotations

import uuid
from datetime import timedelta

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, utcnow
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.jobs.reconcile import reconcile
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.jobs.conftest import load

ran: list[int] = []


@job(timeout_s=5, subject="thing:{n}")
async def touch(jc: JobContext, n: int) -> None:
    ran.append(n)


async def lose_redis_copy(queue: ArqRedis, settings: Settings) -> None:
    """What a Redis restart without persistence does to this test's queue (only to
    its own jobs: other tests share this Redis)."""
    keys = await queue.keys(settings.queue_name + "*")
    for job_id in await queue.zrange(settings.queue_name, 0, -1):
        keys.append(job_key_prefix + job_id.decode())
    if keys:
        await queue.delete(*keys)


async def test_reconcile_is_a_no_op_while_redis_still_has_the_jobs(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        await enqueue(session, touch, n=1)
        await enqueue(session, touch, n=2, defer_by=timedelta(milliseconds=300))
        await commit(session)

    async with db() as session:
        assert await reconcile(session, queue) == 0
        await commit(session)
    assert await queue.zcard(settings.queue_name) == 2

    await run_worker(functions=[touch.arq_function(settings)], cron_jobs=[])
    assert sorted(ran) == [1, 2]


async def test_reconcile_restores_queued_and_deferred_jobs_redis_lost(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        now_job = await enqueue(session, touch, n=1)
        later = await enqueue(session, touch, n=2, defer_by=timedelta(milliseconds=300))
        await commit(session)
    await lose_redis_copy(queue, settings)
    assert await queue.zcard(settings.queue_name) == 0

    async with db() as session:
        assert await reconcile(session, queue) == 2
        await commit(session)
    assert await queue.zscore(settings.queue_name, later.id) is not None

    await run_worker(functions=[touch.arq_function(settings)], cron_jobs=[])
    assert sorted(ran) == [1, 2]
    assert (await load(db, now_job.id)).status == JobStatus.SUCCEEDED
    assert (await load(db, later.id)).status == JobStatus.SUCCEEDED


async def test_reconcile_leaves_a_job_a_worker_holds(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    held = uuid.uuid4().hex
    async with db() as session:
        session.add(_running_row(held, started_minutes_ago=60))
        await commit(session)
    await queue.set(in_progress_key_prefix + held, b"1", ex=60)

    async with db() as session:
        assert await reconcile(session, queue) == 0
        await commit(session)
    assert not await queue.exists(job_key_prefix + held)
    await queue.delete(in_progress_key_prefix + held)


async def test_reconcile_requeues_a_running_job_whose_worker_and_redis_are_gone(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    recent, stale = uuid.uuid4().hex, uuid.uuid4().hex
    async with db() as session:
        session.add(_running_row(recent, started_minutes_ago=0))
        session.add(_running_row(stale, started_minutes_ago=60))
        await commit(session)

    async with db() as session:
        assert await reconcile(session, queue, timeouts={"touch": 5}) == 1
        await commit(session)
    assert (await load(db, stale)).status == JobStatus.QUEUED
    assert (await load(db, recent)).status == JobStatus.RUNNING

    await run_worker(functions=[touch.arq_function(settings)], cron_jobs=[])
    assert ran == [9]
    assert (await load(db, stale)).status == JobStatus.SUCCEEDED


async def test_reconcile_rebuilds_an_outcome_the_ledger_lost(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, touch, n=3)
        await commit(session)
    await run_worker(functions=[touch.arq_function(settings)], cron_jobs=[])
    # A crash inside the worker's write-batching window loses the end of the attempt.
    async with db() as session:
        row = await session.get(JobRun, run.id)
        assert row is not None
        row.status = JobStatus.RUNNING
        row.started_at = utcnow() - timedelta(minutes=60)
        await commit(session)

    async with db() as session:
        assert await reconcile(session, queue) == 1
        await commit(session)
    assert (await load(db, run.id)).status == JobStatus.SUCCEEDED
    assert ran == [3]


def _running_row(job_id: str, *, started_minutes_ago: int) -> JobRun:
    started = utcnow() - timedelta(minutes=started_minutes_ago)
    return JobRun(
        id=job_id,
        function="touch",
        args={"n": 9},
        status=JobStatus.RUNNING,
        attempts=0,
        max_tries=3,
        enqueued_at=started,
        started_at=started,
    )
