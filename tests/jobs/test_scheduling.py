"""Unique keys, deferred jobs, and the ids that follow work from request to job to job."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, utcnow
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.context import request_id
from docdigest.jobs.models import JobAttempt, JobRun, JobStatus
from docdigest.jobs.wakelist import due_ms
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.jobs.conftest import load

ran: list[tuple[str, int]] = []


@job(timeout_s=5)
async def greet(jc: JobContext, user_id: int) -> None:
    ran.append(("greet", user_id))


@job(timeout_s=5, subject="document:{document_id}")
async def first_step(jc: JobContext, document_id: int) -> None:
    ran.append(("first", document_id))
    await enqueue(jc.session, second_step, document_id=document_id)


@job(timeout_s=5, subject="document:{document_id}")
async def second_step(jc: JobContext, document_id: int) -> None:
    ran.append(("second", document_id))


SPECS = [greet, first_step, second_step]


async def test_a_key_makes_a_job_unique(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        first = await enqueue(session, greet, key="welcome:7", user_id=7)
        await commit(session)
    async with db(info={"queue": queue}) as session:
        again = await enqueue(session, greet, key="welcome:7", user_id=7)
        await commit(session)

    assert again.id == first.id
    await run_worker(functions=[s.arq_function(settings) for s in SPECS], cron_jobs=[])
    assert ran == [("greet", 7)]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(JobRun)) == 1


async def test_deferred_jobs_wait_for_their_time_then_run(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    until = utcnow() + timedelta(milliseconds=400)
    async with db(info={"queue": queue}) as session:
        by = await enqueue(session, greet, user_id=1, defer_by=timedelta(milliseconds=300))
        at = await enqueue(session, greet, user_id=2, defer_until=until)
        await commit(session)
    assert (await load(db, by.id)).status == JobStatus.DEFERRED
    assert (await load(db, at.id)).scheduled_at == until

    await run_worker(functions=[s.arq_function(settings) for s in SPECS], cron_jobs=[])

    assert sorted(ran) == [("greet", 1), ("greet", 2)]
    done = await load(db, at.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.started_at is not None and done.started_at >= until


async def test_a_deferred_job_is_never_due_before_its_time(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    # The queue counts whole milliseconds; a time between two is rounded up, not to
    # the nearest, so the job cannot start a fraction of a millisecond early.
    until = (utcnow() + timedelta(seconds=30)).replace(microsecond=123_001)
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, greet, user_id=3, defer_until=until)
        await commit(session)

    score = await queue.zscore(settings.queue_name, run.id)

    assert score is not None
    assert datetime.fromtimestamp(score / 1000, UTC) >= until
    whole = until.replace(microsecond=123_000)
    assert due_ms(whole) == round(whole.timestamp() * 1000)


async def test_request_id_and_parent_follow_a_chain_of_jobs(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    token = request_id.set("req-abc123")
    try:
        async with db(info={"queue": queue}) as session:
            parent = await enqueue(session, first_step, document_id=42)
            await commit(session)
    finally:
        request_id.reset(token)

    await run_worker(functions=[s.arq_function(settings) for s in SPECS], cron_jobs=[])

    assert ran == [("first", 42), ("second", 42)]
    async with db() as session:
        child = await session.scalar(select(JobRun).where(JobRun.function == "second_step"))
    assert child is not None
    assert child.parent_id == parent.id
    assert child.request_id == "req-abc123"
    assert child.subject == "document:42"
    assert child.status == JobStatus.SUCCEEDED
    assert (await load(db, parent.id)).request_id == "req-abc123"


@job(timeout_s=5)
async def reset_password(jc: JobContext, user_id: int, reset_token: str) -> None:
    ran.append(("reset", user_id))


async def test_job_log_lines_carry_ids_and_hide_secrets(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    run_worker: RunWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="docdigest.jobs")
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, reset_password, user_id=3, reset_token="s3cret")
        await commit(session)

    await run_worker(functions=[reset_password.arq_function(settings)], cron_jobs=[])

    lines = {r.getMessage(): r for r in caplog.records if r.name == "docdigest.jobs"}
    start, done = vars(lines["job start"]), vars(lines["job done"])  # the log's extra fields
    assert start["job_id"] == run.id and start["job"] == "reset_password"
    assert start["attempt"] == 1
    assert start["job_args"] == {"user_id": 3, "reset_token": "***"}
    assert done["elapsed_ms"] >= 0
    assert "s3cret" not in caplog.text


async def test_many_jobs_at_once_are_each_recorded_from_start_to_end(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        runs = [await enqueue(session, greet, user_id=n) for n in range(40)]
        await commit(session)

    await run_worker(functions=[greet.arq_function(settings)], cron_jobs=[])

    assert sorted(n for _, n in ran) == list(range(40))
    async with db() as session:
        rows = list(
            await session.scalars(select(JobRun).where(JobRun.id.in_([r.id for r in runs])))
        )
        attempts = await session.scalar(select(func.count()).select_from(JobAttempt))
    assert {r.status for r in rows} == {JobStatus.SUCCEEDED}
    assert all(r.started_at is not None and r.finished_at is not None for r in rows)
    assert attempts == 40


async def test_a_job_another_worker_holds_is_left_to_it_and_the_rest_run(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        runs = [await enqueue(session, greet, user_id=n) for n in range(3)]
        await commit(session)
    # Another worker is running the first job: Arq's in-progress key says so.
    held = in_progress_key_prefix + runs[0].id
    await queue.set(held, b"1", px=60_000)

    functions = [s.arq_function(settings) for s in SPECS]
    await run_worker(functions=functions, cron_jobs=[], max_burst_jobs=2)
    assert sorted(ran) == [("greet", 1), ("greet", 2)]
    assert (await load(db, runs[0].id)).status == JobStatus.QUEUED

    # That worker is gone and its hold has lapsed: the job runs here, once.
    await queue.delete(held)
    await run_worker(functions=functions, cron_jobs=[])
    assert sorted(ran) == [("greet", 0), ("greet", 1), ("greet", 2)]
    assert (await load(db, runs[0].id)).status == JobStatus.SUCCEEDED
