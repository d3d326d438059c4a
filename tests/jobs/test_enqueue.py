"""Enqueue after commit: a job reaches the queue only if its transaction committed."""

from __future__ import annotations

import pytest
from arq.connections import ArqRedis
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, rollback
from docdigest.core.queue import connect_queue
from docdigest.jobs import Call, JobContext, enqueue, enqueue_all, job
from docdigest.jobs.enqueue import _PUSH_SHA
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker, record_statements

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


async def test_several_jobs_go_in_with_one_insert_and_reach_the_queue_together(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker
) -> None:
    """`enqueue_all` writes its rows in one statement and returns them in call order
    (a taken key gives the job that holds it); after commit every new job is pushed,
    and runs."""
    queue = await connect_queue(settings)
    seen.clear()
    async with db() as session:  # recorded, never pushed: no queue on this session
        held = await enqueue(session, record_number, key="number:5", n=5)
        await commit(session)
    async with db(info={"queue": queue}) as session:
        bind = session.get_bind()
        assert isinstance(bind, Engine)
        inserts = record_statements(bind, "INSERT")
        runs = await enqueue_all(
            session,
            [
                Call(record_number, {"n": 1}),
                Call(record_number, {"n": 5}, key="number:5"),
                Call(record_number, {"n": 2}),
                Call(record_number, {"n": 3}, request_id="req-3"),
            ],
        )
        assert len(inserts) == 1
        assert [run.args["n"] for run in runs] == [1, 5, 2, 3]
        assert runs[1].id == held.id
        assert runs[3].request_id == "req-3"
        assert await queue.zcard(settings.queue_name) == 0  # nothing before the commit
        await commit(session)
    assert await queue.zcard(settings.queue_name) == 3  # the new ones only

    await run_worker(functions=[record_number.arq_function(settings)], cron_jobs=[])
    assert sorted(seen) == [1, 2, 3]
    await queue.aclose()


async def script_calls(queue: ArqRedis, command: str) -> int:
    stats = await queue.info("commandstats")
    return int(stats.get(f"cmdstat_script|{command}", {}).get("calls", 0))


@pytest.mark.parametrize("jobs", [1, 3])
async def test_jobs_are_pushed_without_asking_for_the_script_even_once_redis_forgot_it(
    settings: Settings, db: async_sessionmaker[AsyncSession], jobs: int
) -> None:
    """A transaction's jobs, one or several, go to Redis as the push script's hash in
    one round trip. Redis that lost its scripts (a restart) gets the script again and
    every job still arrives; Redis that has it is never asked whether it does."""
    queue = await connect_queue(settings)
    await queue.script_flush()
    for batch in (1, 2):
        asked = await script_calls(queue, "exists")
        async with db(info={"queue": queue}) as session:
            await enqueue_all(
                session, [Call(record_number, {"n": batch * 10 + n}) for n in range(jobs)]
            )
            await commit(session)
        assert await queue.zcard(settings.queue_name) == jobs * batch
        assert await script_calls(queue, "exists") == asked
        # Loaded again once it was missing (other tests share the server's script cache,
        # so its own load is checked rather than a count of every load).
        assert await queue.script_exists(_PUSH_SHA) == [True]
    await queue.aclose()
