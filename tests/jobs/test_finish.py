"""A job's end in Redis: the same keys as Arq's own `finish_job` leaves, written for
the jobs that end together in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.models import JobStatus
from docdigest.settings import Settings
from docdigest.worker import create_worker
from tests.conftest import RunWorker
from tests.jobs.conftest import commands_during, load

PREFIXES = {
    "in_progress": in_progress_key_prefix,
    "result": result_key_prefix,
    "retry": retry_key_prefix,
    "job": job_key_prefix,
}


@job(timeout_s=5)
async def quick(jc: JobContext, n: int) -> None:
    return None


async def _arrange(queue: ArqRedis, job_id: str) -> None:
    """A job as a worker holds it while it runs: claimed, counted, queued, asked to abort."""
    await queue.set(in_progress_key_prefix + job_id, b"1", px=60_000)
    await queue.set(retry_key_prefix + job_id, b"1", ex=88_400)
    await queue.set(job_key_prefix + job_id, b"payload", px=60_000)
    await queue.zadd(queue.default_queue_name, {job_id: 1000})
    await queue.zadd(abort_jobs_ss, {job_id: 1000})


async def _state(queue: ArqRedis, job_id: str) -> dict[str, Any]:
    """What is left of a job: each key's value and whether it expires (and within the
    hour or not), and its scores in the queue and the abort set."""
    state: dict[str, Any] = {}
    for name, prefix in PREFIXES.items():
        ttl_ms = await queue.pttl(prefix + job_id)
        expiry = "none" if ttl_ms == -1 else "gone" if ttl_ms == -2 else ttl_ms <= 3_600_000
        state[name] = (await queue.get(prefix + job_id), expiry)
    state["queued"] = await queue.zscore(queue.default_queue_name, job_id)
    state["abort"] = await queue.zscore(abort_jobs_ss, job_id)
    return state


ENDS = {
    "succeeded, result kept an hour": (True, b"result", 3600, False, None, None),
    "succeeded, result kept for ever": (True, b"result", 3600, True, None, None),
    "succeeded, no result kept": (True, None, 0, False, None, None),
    "retried later (score raised)": (False, None, 3600, False, 5000, None),
    "interrupted, held a while": (False, None, 3600, False, None, 30.0),
}


@pytest.mark.parametrize("end", ENDS.values(), ids=ENDS.keys())
async def test_a_job_ends_with_the_keys_arqs_own_finish_leaves(
    settings: Settings, queue: ArqRedis, end: tuple[Any, ...]
) -> None:
    worker = create_worker(settings, redis_pool=queue, burst=True, handle_signals=False)
    theirs, ours = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        for job_id in (theirs, ours):
            await _arrange(queue, job_id)

        await Worker.finish_job(worker, theirs, *end)
        await worker.finish_job(ours, *end)

        assert await _state(queue, ours) == await _state(queue, theirs)
    finally:
        for job_id in (theirs, ours):
            await queue.delete(*(prefix + job_id for prefix in PREFIXES.values()))
            await queue.zrem(abort_jobs_ss, job_id)


async def test_jobs_that_end_together_are_finished_in_one_transaction(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    async with db(info={"queue": queue}) as session:
        runs = [await enqueue(session, quick, n=n) for n in range(5)]
        await commit(session)

    commands = await commands_during(
        queue, lambda: run_worker(functions=[quick.arq_function(settings)], cron_jobs=[])
    )

    # Each MULTI ... EXEC the worker sent, and the jobs whose results it stored.
    transactions: list[list[str]] = []
    for command in commands:
        if command.startswith("MULTI"):
            transactions.append([])
        elif transactions and not command.startswith("EXEC"):
            transactions[-1].append(command)
    finished = [
        {run.id for run in runs if any(result_key_prefix + run.id in c for c in commands)}
        for commands in transactions
    ]
    finished = [ids for ids in finished if ids]
    assert set().union(*finished) == {run.id for run in runs}
    assert len(finished) < len(runs), finished
    for run in runs:
        assert (await load(db, run.id)).status == JobStatus.SUCCEEDED
        state = await _state(queue, run.id)
        assert state["result"][0] is not None and state["result"][1] is True
        assert state["job"] == state["retry"] == state["in_progress"] == (None, "gone")
        assert state["queued"] is None
