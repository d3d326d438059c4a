"""An idle worker starts a pushed job when it is pushed, not at its next poll."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.models import JobStatus
from docdigest.jobs.wakeup import wake_key
from docdigest.settings import Settings
from tests.jobs.conftest import eventually, running_worker, status_is

#: Far longer than any test waits: a job that starts came from the wake-up, not a poll.
POLL_DELAY_S = 120.0

ran: list[int] = []


@job(timeout_s=5)
async def note(jc: JobContext, n: int) -> None:
    ran.append(n)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    """A worker running as in production, with a poll delay no test waits out."""
    async with running_worker(
        settings, functions=[note.arq_function(settings)], cron_jobs=[], poll_delay=POLL_DELAY_S
    ):
        yield


@pytest.mark.usefixtures("worker")
async def test_an_idle_worker_starts_a_pushed_job_long_before_its_next_poll(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    ran.clear()
    for n in range(3):  # and again each time it has gone back to waiting
        await eventually(lambda: _waiting_for_a_push(queue, settings.queue_name))
        async with db(info={"queue": queue}) as session:
            run = await enqueue(session, note, n=n)
            await commit(session)
        succeeded = functools.partial(status_is, db, run.id, JobStatus.SUCCEEDED)
        await eventually(succeeded, within_s=POLL_DELAY_S / 4)
    assert ran == [0, 1, 2]


async def _waiting_for_a_push(queue: ArqRedis, queue_name: str) -> bool:
    """A worker blocks on a wake-up list, and no earlier push is left on this one.

    Redis does not say which list a client blocks on, so before the first push the
    blocked client may be another test's worker; from the second push on, only this
    worker can have taken the last push's token, and it listens again at once.
    """
    clients = await queue.client_list()
    blocked = any(c["cmd"] == "blpop" and "b" in c["flags"] for c in clients)
    return blocked and not await queue.llen(wake_key(queue_name))
