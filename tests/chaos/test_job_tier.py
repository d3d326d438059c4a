"""The job tier under crashes, lost Redis data, shutdowns and competing workers."""

from __future__ import annotations

import asyncio
import itertools
import signal
import uuid
from datetime import timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs import enqueue
from docdigest.jobs.models import JobAttempt, JobRun, JobStatus
from docdigest.jobs.reconcile import reconcile
from docdigest.settings import Settings
from tests.chaos.conftest import StartWorker
from tests.chaos.worker import always_down, marks_key, quick_effect, slow_effect
from tests.jobs.conftest import eventually, load

# Arq gives a dead worker's job to another after max(timeout) + 10 s; the chaos
# worker's largest timeout is 3 s (+1 s the wrapper keeps for bookkeeping).
RECOVERY_S = 3 + 1 + 10


async def marks(queue: ArqRedis, settings: Settings, kind: str) -> list[str]:
    marked = await queue.lrange(marks_key(settings, kind), 0, -1)  # type: ignore[misc]
    return [m.decode() for m in marked]


async def all_succeeded(db: async_sessionmaker[AsyncSession], ids: list[str]) -> bool:
    async with db() as session:
        rows = await session.scalars(select(JobRun.status).where(JobRun.id.in_(ids)))
        return [*rows].count(JobStatus.SUCCEEDED) == len(ids)


async def test_a_job_whose_worker_is_killed_completes_once_on_another_worker(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    start_worker: StartWorker,
) -> None:
    first = start_worker()
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, slow_effect, tag="report", seconds=1.5)
        await commit(session)
    await eventually(lambda: marks(queue, settings, "starts"), within_s=30)

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    start_worker()

    # Generous: starting a worker process takes seconds on a busy machine.
    await eventually(lambda: marks(queue, settings, "effects"), within_s=RECOVERY_S + 40)
    await eventually(lambda: all_succeeded(db, [run.id]), within_s=30)
    assert await marks(queue, settings, "effects") == ["report"]
    assert await marks(queue, settings, "starts") == ["report", "report"]


async def test_jobs_redis_lost_are_restored_by_the_reconciler_and_run_once(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    start_worker: StartWorker,
) -> None:
    async with db(info={"queue": queue}) as session:
        runs = [await enqueue(session, quick_effect, tag=f"now-{n}") for n in range(5)]
        runs += [
            await enqueue(session, quick_effect, tag=f"later-{n}", defer_by=timedelta(seconds=1))
            for n in range(3)
        ]
        await commit(session)
    # What a Redis restart without persistence does to this queue (never FLUSHDB:
    # the Redis is shared with other tests).
    await queue.delete(settings.queue_name, *(job_key_prefix + r.id for r in runs))
    assert await queue.zcard(settings.queue_name) == 0

    async with db() as session:
        assert await reconcile(session, queue) == len(runs)
        await commit(session)
    start_worker()

    ids = [r.id for r in runs]
    await eventually(lambda: all_succeeded(db, ids), within_s=30)
    effects = await marks(queue, settings, "effects")
    assert sorted(effects) == sorted(r.args["tag"] for r in runs)


async def test_a_job_that_keeps_failing_transiently_ends_failed_after_backing_off(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    start_worker: StartWorker,
) -> None:
    start_worker()
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, always_down)
        await commit(session)

    async def failed() -> bool:
        return (await load(db, run.id)).status == JobStatus.FAILED

    await eventually(failed, within_s=30)
    stored = await load(db, run.id)
    assert stored.attempts == 4
    assert stored.error_message == "the mail server says 451, try later"
    async with db() as session:
        query = select(JobAttempt).where(JobAttempt.job_id == run.id).order_by(JobAttempt.attempt)
        attempts = list(await session.scalars(query))
    assert [a.outcome for a in attempts] == ["retried", "retried", "retried", "failed"]
    for number, (tried, following) in enumerate(itertools.pairwise(attempts), start=1):
        delay = tried.retry_delay_s
        assert delay is not None
        # Full jitter: anywhere from 0 to min(cap, base * 2^(n-1)).
        assert 0 <= delay <= min(0.6, 0.2 * 2 ** (number - 1)) + 1e-9
        # The next try never came before its backoff was over (ms clock rounding aside).
        waited = (following.started_at - tried.finished_at).total_seconds()
        assert waited >= delay - 0.01


async def test_sigterm_lets_the_running_job_finish_and_loses_nothing(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    start_worker: StartWorker,
) -> None:
    worker = start_worker()
    async with db(info={"queue": queue}) as session:
        running = await enqueue(session, slow_effect, tag="in-flight", seconds=1.5)
        await commit(session)
    await eventually(lambda: marks(queue, settings, "starts"), within_s=30)
    async with db(info={"queue": queue}) as session:
        waiting = await enqueue(session, quick_effect, tag="waiting", defer_by=timedelta(seconds=2))
        await commit(session)

    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0

    assert await marks(queue, settings, "effects") == ["in-flight"]
    assert (await load(db, running.id)).status == JobStatus.SUCCEEDED
    # The job that had not started stays queued for the next worker.
    assert (await load(db, waiting.id)).status == JobStatus.DEFERRED
    start_worker()
    await eventually(lambda: all_succeeded(db, [waiting.id]), within_s=30)
    assert sorted(await marks(queue, settings, "effects")) == ["in-flight", "waiting"]


async def test_three_workers_run_each_of_many_jobs_once(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    start_worker: StartWorker,
) -> None:
    for _ in range(3):
        start_worker()
    tags = [uuid.uuid4().hex[:8] for _ in range(60)]
    async with db(info={"queue": queue}) as session:
        runs = [await enqueue(session, quick_effect, tag=tag) for tag in tags]
        await commit(session)

    await eventually(lambda: all_succeeded(db, [r.id for r in runs]), within_s=60)
    assert sorted(await marks(queue, settings, "effects")) == sorted(tags)
