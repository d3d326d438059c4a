"""The claim: one script takes a worker's due jobs and reads each for its start.

Try counts over retries, which the claim now increments, are checked by
tests/jobs/test_policy.py."""

from __future__ import annotations

import pytest
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.claim import ClaimedRead
from docdigest.jobs.models import JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.jobs.conftest import commands_during, load

ran: list[int] = []


@job(timeout_s=5)
async def count(jc: JobContext, n: int) -> None:
    ran.append(n)


async def test_a_claimed_job_starts_without_a_read_of_its_own(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        runs = [await enqueue(session, count, n=n) for n in range(5)]
        await commit(session)

    commands = await commands_during(
        queue, lambda: run_worker(functions=[count.arq_function(settings)], cron_jobs=[])
    )

    assert sorted(ran) == list(range(5))
    for run in runs:
        assert (await load(db, run.id)).status == JobStatus.SUCCEEDED
        # Arq reads a job with GET and counts its tries with INCR before it starts;
        # here the claim script did both, so neither was a command of its own.
        mine = [c for c in commands if run.id in c]
        assert mine, "the monitor saw none of the job's commands"
        assert not [c for c in mine if c.startswith(("GET", "INCR", "EXPIRE"))], mine


async def test_a_job_aborted_before_its_claim_never_runs(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    ran.clear()
    async with db(info={"queue": queue}) as session:
        aborted = await enqueue(session, count, n=1)
        await enqueue(session, count, n=2)
        await commit(session)
    # What Arq's Job.abort() writes; the claim removes it as Arq's own read would.
    await queue.zadd(abort_jobs_ss, {aborted.id: timestamp_ms()})

    await run_worker(functions=[count.arq_function(settings)], cron_jobs=[])

    assert ran == [2]
    assert await queue.zscore(abort_jobs_ss, aborted.id) is None


async def test_a_first_read_other_than_arqs_is_refused() -> None:
    read = ClaimedRead("abc", [b"payload", 1, True, 0], abort=True)
    async with read as pipe:
        pipe.get(job_key_prefix + "abc")
        pipe.incr(retry_key_prefix + "abc")
        # no EXPIRE, no ZREM: not the read the claim answered
        with pytest.raises(RuntimeError, match="first read of a job changed"):
            await pipe.execute()

    read = ClaimedRead("abc", [b"payload", 1, True, 0], abort=True)
    pipe = read.get(job_key_prefix + "abc").incr(retry_key_prefix + "abc")
    pipe.expire(retry_key_prefix + "abc", 88400).zrem(abort_jobs_ss, "abc")
    assert await pipe.execute() == [b"payload", 1, True, 0]
