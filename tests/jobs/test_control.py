"""Operators requeue dead letters and cancel work that is waiting or running."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.core.errors import Conflict, NotFound
from docdigest.jobs import JobContext, Permanent, control, enqueue, job
from docdigest.jobs.models import JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.jobs.conftest import attempts_of, eventually, load, running_worker, status_is

seen: list[tuple[int, str]] = []
broken = {"on": True}


@job(timeout_s=5, max_tries=2)
async def convert(jc: JobContext, document_id: int, fmt: str) -> None:
    if broken["on"]:
        raise Permanent("converter missing")
    seen.append((document_id, fmt))


@job(timeout_s=30, max_tries=1)
async def long_running(jc: JobContext) -> None:
    seen.append((0, "started"))
    await asyncio.sleep(30)


def functions(settings: Settings) -> list[object]:
    return [convert.arq_function(settings), long_running.arq_function(settings)]


async def test_requeue_runs_a_dead_letter_again_with_the_same_arguments(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    seen.clear()
    broken["on"] = True
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, convert, document_id=42, fmt="pdf")
        await commit(session)
    await run_worker(functions=functions(settings), cron_jobs=[])
    assert (await load(db, run.id)).status == JobStatus.FAILED

    broken["on"] = False
    async with db(info={"queue": queue}) as session:
        requeued = await control.requeue(session, run.id)
        assert requeued.status == JobStatus.QUEUED
        await commit(session)
    await run_worker(functions=functions(settings), cron_jobs=[])

    assert seen == [(42, "pdf")]
    after = await load(db, run.id)
    assert after.status == JobStatus.SUCCEEDED
    assert after.series == 2
    assert after.attempts == 1
    assert after.error_message is None
    attempts = await attempts_of(db, run.id)
    assert [(a.series, a.attempt, a.outcome) for a in attempts] == [
        (1, 1, "failed"),
        (2, 1, "succeeded"),
    ]


async def test_requeue_all_failed_of_one_function(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    seen.clear()
    broken["on"] = True
    async with db(info={"queue": queue}) as session:
        for n in range(3):
            await enqueue(session, convert, document_id=n, fmt="txt")
        await commit(session)
    await run_worker(functions=functions(settings), cron_jobs=[])

    broken["on"] = False
    async with db(info={"queue": queue}) as session:
        assert await control.requeue_failed(session, function="something_else") == 0
        assert await control.requeue_failed(session, function="convert") == 3
        await commit(session)
    await run_worker(functions=functions(settings), cron_jobs=[])

    assert sorted(seen) == [(0, "txt"), (1, "txt"), (2, "txt")]


async def test_requeue_and_cancel_refuse_wrong_states_and_unknown_ids(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, convert, document_id=1, fmt="pdf")
        await commit(session)
    async with db(info={"queue": queue}) as session:
        with pytest.raises(Conflict):
            await control.requeue(session, run.id)
        with pytest.raises(NotFound):
            await control.requeue(session, "no-such-job")
        with pytest.raises(NotFound):
            await control.cancel(session, queue, "no-such-job")
        await control.cancel(session, queue, run.id)
        await commit(session)
    async with db(info={"queue": queue}) as session:
        with pytest.raises(Conflict):
            await control.cancel(session, queue, run.id)


@pytest.mark.parametrize("deferred", [False, True])
async def test_cancel_takes_a_waiting_job_off_the_queue(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    run_worker: RunWorker,
    deferred: bool,
) -> None:
    seen.clear()
    broken["on"] = False
    defer = timedelta(hours=1) if deferred else None
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, convert, document_id=5, fmt="pdf", defer_by=defer)
        await commit(session)
    assert run.status == (JobStatus.DEFERRED if deferred else JobStatus.QUEUED)

    async with db(info={"queue": queue}) as session:
        cancelled = await control.cancel(session, queue, run.id)
        await commit(session)
    assert cancelled.status == JobStatus.CANCELLED
    assert await queue.zscore(settings.queue_name, run.id) is None
    assert not await queue.exists(job_key_prefix + run.id)

    await run_worker(functions=functions(settings), cron_jobs=[])
    assert seen == []
    assert (await load(db, run.id)).status == JobStatus.CANCELLED


async def test_cancel_aborts_a_running_job(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    seen.clear()
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, long_running)
        await commit(session)
    async with running_worker(settings, functions=functions(settings), cron_jobs=[]):
        await eventually(lambda: queue.exists(in_progress_key_prefix + run.id))
        await eventually(lambda: status_is(db, run.id, JobStatus.RUNNING))

        async with db(info={"queue": queue}) as session:
            await control.cancel(session, queue, run.id)
            await commit(session)

        await eventually(lambda: _attempt_outcome(db, run.id, "cancelled"))
        assert not await queue.exists(in_progress_key_prefix + run.id)
    assert (await load(db, run.id)).status == JobStatus.CANCELLED


async def _attempt_outcome(db: async_sessionmaker[AsyncSession], job_id: str, outcome: str) -> bool:
    return any(a.outcome == outcome for a in await attempts_of(db, job_id))
