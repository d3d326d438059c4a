"""The worker's batched ledger writes: one batch may hold several jobs' whole lives."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Generator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, create_engine, utcnow
from docdigest.jobs.ledger import IDLE_FLUSH_S, MAX_BATCH_NOTES, Ledger
from docdigest.jobs.ledger_batch import Ended, Started
from docdigest.jobs.models import AttemptOutcome, JobAttempt, JobRun, JobStatus
from docdigest.settings import Settings
from tests.jobs.conftest import eventually, load, status_is


def ended(
    job_id: str, started_at: datetime, outcome: AttemptOutcome, status: JobStatus, attempt: int = 1
) -> Ended:
    return Ended(
        job_id=job_id,
        series=1,
        attempt=attempt,
        started_at=started_at,
        finished_at=started_at + timedelta(milliseconds=1),
        outcome=outcome,
        status=status,
    )


async def test_one_batch_with_whole_attempts_running_jobs_and_late_ends(
    settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow()
    async with db() as session:
        for job_id, status in [
            ("retried", JobStatus.QUEUED),
            ("running", JobStatus.QUEUED),
            ("late", JobStatus.RUNNING),
            ("cancelled", JobStatus.CANCELLED),
        ]:
            session.add(
                JobRun(
                    id=job_id, function="f", args={}, status=status, max_tries=3, enqueued_at=now
                )
            )
        late = await session.get(JobRun, "late")
        assert late is not None
        late.started_at = now - timedelta(seconds=1)
        await commit(session)

    first, second = now + timedelta(milliseconds=1), now + timedelta(milliseconds=2)
    engine = create_engine(settings.database_url)
    ledger = Ledger(engine, flush_s=60)  # nothing is written until close()
    # A job that failed once and then succeeded, both attempts in this batch:
    ledger.record_start("retried", _started(first))
    ledger.end(ended("retried", first, AttemptOutcome.RETRIED, JobStatus.RETRYING))
    ledger.record_start("retried", _started(second))
    ledger.end(ended("retried", second, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED, 2))
    # One still running when the batch is written, one whose start an earlier
    # batch wrote, and one an operator cancelled before its attempt's notes arrived.
    ledger.record_start("running", _started(first))
    ledger.end(
        ended("late", now - timedelta(seconds=1), AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED)
    )
    ledger.record_start("cancelled", _started(first))
    ledger.end(ended("cancelled", first, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
    await ledger.close()
    await engine.dispose()

    retried = await load(db, "retried")
    assert (retried.status, retried.attempts) == (JobStatus.SUCCEEDED, 2)
    assert retried.started_at == second and retried.finished_at is not None
    running = await load(db, "running")
    assert (running.status, running.started_at, running.finished_at) == (
        JobStatus.RUNNING,
        first,
        None,
    )
    assert (await load(db, "late")).status == JobStatus.SUCCEEDED
    assert (await load(db, "cancelled")).status == JobStatus.CANCELLED
    async with db() as session:
        attempts = (
            await session.execute(
                select(JobAttempt.job_id, JobAttempt.attempt, JobAttempt.outcome).order_by(
                    JobAttempt.job_id, JobAttempt.attempt
                )
            )
        ).all()
    # The attempt rows tell what really happened, the cancelled job's included.
    assert [tuple(a) for a in attempts] == [
        ("cancelled", 1, AttemptOutcome.SUCCEEDED),
        ("late", 1, AttemptOutcome.SUCCEEDED),
        ("retried", 1, AttemptOutcome.RETRIED),
        ("retried", 2, AttemptOutcome.SUCCEEDED),
    ]


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """Notes wait for the interval while they are few; once a batch is full it goes at
    once, so a busy worker's batches stay bounded whatever the interval."""
    jobs = MAX_BATCH_NOTES // 2  # a start and an end each
    now = utcnow()
    ids = [f"job-{n}" for n in range(jobs)]
    await _queued(db, ids, now)
    engine = create_engine(settings.database_url)
    ledger = Ledger(engine, flush_s=60)
    try:
        for job_id in ids[:-1]:
            ledger.record_start(job_id, _started(now))
            ledger.end(ended(job_id, now, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
        await asyncio.sleep(0.3)
        assert (await load(db, ids[0])).status == JobStatus.QUEUED  # still gathering
        ledger.record_start(ids[-1], _started(now))
        ledger.end(ended(ids[-1], now, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
        # Written long before the minute is up, and before close() could flush it.
        for job_id in (ids[0], ids[-1]):
            await eventually(functools.partial(status_is, db, job_id, JobStatus.SUCCEEDED))
    finally:
        await ledger.close()
        await engine.dispose()


async def test_notes_gather_while_jobs_run_and_go_once_the_worker_is_idle(
    settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """A busy worker's notes wait, for `flush_s` at most, to share a transaction; an
    idle worker's go within IDLE_FLUSH_S, when a batch would save nothing."""
    now = utcnow()
    await _queued(db, ["while-busy", "once-idle"], now)
    running = [True]
    engine = create_engine(settings.database_url)
    ledger = Ledger(engine, flush_s=3, busy=lambda: running[0])
    try:
        ledger.record_start("while-busy", _started(now))
        ledger.end(ended("while-busy", now, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
        await asyncio.sleep(IDLE_FLUSH_S * 6)
        assert (await load(db, "while-busy")).status == JobStatus.QUEUED  # still gathering
        # Busy all along: written once flush_s is up.
        await eventually(lambda: status_is(db, "while-busy", JobStatus.SUCCEEDED))

        ledger.record_start("once-idle", _started(now))
        ledger.end(ended("once-idle", now, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
        await asyncio.sleep(IDLE_FLUSH_S * 6)
        assert (await load(db, "once-idle")).status == JobStatus.QUEUED
        running[0] = False
        await eventually(lambda: status_is(db, "once-idle", JobStatus.SUCCEEDED), within_s=2)
    finally:
        await ledger.close()
        await engine.dispose()


async def _queued(db: async_sessionmaker[AsyncSession], ids: list[str], now: datetime) -> None:
    """Ledger rows for `ids`, queued and not yet started."""
    async with db() as session:
        session.add_all(
            JobRun(
                id=i, function="f", args={}, status=JobStatus.QUEUED, max_tries=1, enqueued_at=now
            )
            for i in ids
        )
        await commit(session)


def _started(at: datetime) -> Started:
    return Started(request_id=None, parent_id=None, subject=None, series=1, started_at=at)


async def test_closing_leaves_no_write_behind(
    settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """Notes waiting for the flush timer are written by close(), and the timer goes
    with them: a write woken after close() would find its event loop gone."""
    now = utcnow()
    await _queued(db, ["done"], now)
    flush_s = 0.05
    engine = create_engine(settings.database_url)
    ledger = Ledger(engine, flush_s=flush_s)
    ledger.record_start("done", _started(now))
    ledger.end(ended("done", now, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
    await ledger.close()
    await engine.dispose()

    loop = asyncio.get_running_loop()
    created: list[str] = []
    factory = loop.get_task_factory()

    def recording(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        created.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(recording)
    try:
        await asyncio.sleep(flush_s * 4)
    finally:
        loop.set_task_factory(factory)
    assert created == []
    assert (await load(db, "done")).status == JobStatus.SUCCEEDED
