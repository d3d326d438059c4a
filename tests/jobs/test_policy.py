"""Retries by policy: transient errors come back with backoff, permanent ones fail at once."""

from __future__ import annotations

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs import JobContext, Permanent, Transient, enqueue, job
from docdigest.jobs.models import AttemptOutcome, JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.jobs.conftest import attempts_of, load

calls: list[int] = []


@job(timeout_s=5, max_tries=4)
async def flaky(jc: JobContext, fail_times: int) -> None:
    calls.append(jc.attempt)
    if jc.attempt <= fail_times:
        raise ConnectionError("upstream went away")


@job(timeout_s=5, max_tries=4)
async def bad_input(jc: JobContext) -> None:
    calls.append(jc.attempt)
    raise Permanent("not a PDF")


@job(timeout_s=5, max_tries=4)
async def programming_error(jc: JobContext) -> None:
    calls.append(jc.attempt)
    raise KeyError("oops")


@job(timeout_s=5, max_tries=3)
async def always_down(jc: JobContext) -> None:
    calls.append(jc.attempt)
    raise Transient("mail server says 451")


@job(timeout_s=0.2, max_tries=2)
async def too_slow(jc: JobContext) -> None:
    import asyncio

    calls.append(jc.attempt)
    await asyncio.sleep(5)


SPECS = [flaky, bad_input, programming_error, always_down, too_slow]


async def run_one(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    run_worker: RunWorker,
    spec: object,
    **kwargs: object,
) -> str:
    calls.clear()
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, spec, **kwargs)  # type: ignore[arg-type]
        await commit(session)
    await run_worker(functions=[s.arq_function(settings) for s in SPECS], cron_jobs=[])
    return run.id


async def test_transient_errors_are_retried_with_backoff_then_succeed(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    job_id = await run_one(settings, db, queue, run_worker, flaky, fail_times=2)

    assert calls == [1, 2, 3]
    run = await load(db, job_id)
    assert run.status == JobStatus.SUCCEEDED
    assert run.attempts == 3
    attempts = await attempts_of(db, job_id)
    assert [a.outcome for a in attempts] == ["retried", "retried", "succeeded"]
    assert attempts[0].error_type == "ConnectionError"
    for a in attempts[:2]:
        assert a.retry_delay_s is not None
        assert 0 <= a.retry_delay_s <= settings.job_retry_cap_s


async def test_permanent_error_fails_at_once_with_the_reason(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    job_id = await run_one(settings, db, queue, run_worker, bad_input)

    assert calls == [1]
    run = await load(db, job_id)
    assert run.status == JobStatus.FAILED
    assert run.error_type == "Permanent"
    assert run.error_message == "not a PDF"
    assert run.finished_at is not None and run.finished_at.tzinfo is not None


async def test_a_bug_is_not_retried(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    job_id = await run_one(settings, db, queue, run_worker, programming_error)

    assert calls == [1]
    run = await load(db, job_id)
    assert run.status == JobStatus.FAILED
    assert run.error_type == "KeyError"
    assert run.error_traceback and "programming_error" in run.error_traceback


async def test_exhausted_retries_leave_a_dead_letter_with_every_attempt(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    job_id = await run_one(settings, db, queue, run_worker, always_down)

    assert calls == [1, 2, 3]
    run = await load(db, job_id)
    assert run.status == JobStatus.FAILED
    assert run.attempts == 3
    assert run.error_message == "mail server says 451"
    attempts = await attempts_of(db, job_id)
    assert [a.outcome for a in attempts] == [
        AttemptOutcome.RETRIED,
        AttemptOutcome.RETRIED,
        AttemptOutcome.FAILED,
    ]
    assert all(a.started_at <= a.finished_at for a in attempts)


async def test_a_job_over_its_timeout_is_retried_then_failed(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    job_id = await run_one(settings, db, queue, run_worker, too_slow)

    assert calls == [1, 2]
    run = await load(db, job_id)
    assert run.status == JobStatus.FAILED
    assert run.error_type == "TimeoutError"
