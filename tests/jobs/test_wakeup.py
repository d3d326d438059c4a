"""An idle worker starts a pushed job when it is pushed, not at its next poll: its
claim already waits in Redis behind its BLPOP, so the job comes with the wake."""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs import JobContext, enqueue, job, wakeup
from docdigest.jobs.models import JobStatus
from docdigest.jobs.registry import JobSpec
from docdigest.jobs.wakelist import WAKE_TOKENS_MAX, now_ms, wake_key
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.jobs.conftest import eventually, load, running_worker, status_is

#: Far longer than any test waits: a job that starts came from the wake-up, not a poll.
POLL_DELAY_S = 120.0

#: The module, not the function of the same name that `docdigest.jobs` exports.
enqueue_module = importlib.import_module("docdigest.jobs.enqueue")

ran: list[int] = []


@job(timeout_s=5)
async def note(jc: JobContext, n: int) -> None:
    ran.append(n)


running: set[int] = set()
most_at_once = 0


@job(timeout_s=5)
async def hold(jc: JobContext, n: int) -> None:
    """Runs for a moment, noting how many of its kind run beside it."""
    global most_at_once
    running.add(n)
    most_at_once = max(most_at_once, len(running))
    await asyncio.sleep(0.05)
    running.discard(n)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with _worker(settings):
        yield


def _worker(
    settings: Settings, spec: JobSpec = note, **options: Any
) -> AbstractAsyncContextManager[Worker]:
    """A worker running as in production, with a poll delay no test waits out."""
    return running_worker(
        settings,
        functions=[spec.arq_function(settings)],
        cron_jobs=[],
        poll_delay=POLL_DELAY_S,
        **options,
    )


async def _succeeds(db: async_sessionmaker[AsyncSession], job_id: str) -> None:
    """Wait for the job to succeed, far sooner than the worker's next poll."""
    succeeded = functools.partial(status_is, db, job_id, JobStatus.SUCCEEDED)
    await eventually(succeeded, within_s=POLL_DELAY_S / 4)


async def _enqueue(db: async_sessionmaker[AsyncSession], queue: ArqRedis, n: int) -> str:
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, note, n=n)
        await commit(session)
    return run.id


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
        await _succeeds(db, run.id)
    assert ran == [0, 1, 2]


async def _waiting_for_a_push(queue: ArqRedis, queue_name: str) -> bool:
    """A worker blocks on a wake-up list, and no earlier push is left on this one.

    Redis does not say which list a client blocks on, so before the first push the
    blocked client may be another test's worker; from the second push on, only this
    worker can have taken the last push's token, and it listens again at once.
    """
    clients = await queue.client_list()
    blocked = any(c["cmd"] == "blpop" and "b" in c["flags"] for c in clients)
    return blocked and not await queue.llen(wake_key(queue_name))  # type: ignore[misc]


@pytest.mark.usefixtures("worker")
async def test_an_idle_worker_waits_with_its_claim_already_in_redis(queue: ArqRedis) -> None:
    """The claim sits in Redis's buffer behind the blocked BLPOP, so Redis runs it as
    the push's token arrives: no round trip between the wake and the claim."""
    await eventually(lambda: _blocked_with_a_claim_behind(queue))


async def test_a_deferred_job_starts_at_its_time_though_the_claim_waits_for_a_push(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    """The poll loop's own poll for a due deferred job takes the armed claim's slots
    back first; left to the claim, the job would wait for the BLPOP's timeout."""
    ran.clear()
    # One slot, so that the claim, armed again, holds the worker's every slot.
    async with _worker(settings, max_jobs=1):
        await eventually(lambda: _blocked_with_a_claim_behind(queue))
        async with db(info={"queue": queue}) as session:
            # Its time runs from here, and `n=1`'s from the push after the commit: were
            # the commit slower than the deferral, `later` would be due first and pushed
            # with a wake-up of its own. Two seconds leave a loaded machine room.
            later = await enqueue(session, note, n=2, defer_by=timedelta(seconds=2))
            await enqueue(session, note, n=1)  # its push wakes the worker, who learns of `later`
            await commit(session)
        await _succeeds(db, later.id)
    assert ran == [1, 2]
    run = await load(db, later.id)
    assert run.started_at is not None and run.scheduled_at is not None
    assert run.started_at >= run.scheduled_at


async def test_a_worker_runs_no_more_jobs_at_once_than_its_slots(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    """The armed claim and the poll loop after each finished job claim side by side;
    the slots the claim holds are never claimed twice."""
    global most_at_once
    most_at_once = 0
    async with _worker(settings, spec=hold, max_jobs=2):
        ids: list[str] = []
        for n in range(12):  # alone and in twos and threes
            async with db(info={"queue": queue}) as session:
                for _ in range(1 + n % 3):
                    ids.append((await enqueue(session, hold, n=len(ids))).id)
                await commit(session)
            await asyncio.sleep(0.01 * (n % 4))
        for job_id in ids:
            await _succeeds(db, job_id)
    assert most_at_once == 2


async def test_a_backlog_longer_than_the_wake_list_runs_without_waiting_for_a_poll(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    """More jobs wait than there are wake tokens: once the tokens are spent, each
    freed slot still takes the next due job at once, rather than a claim armed
    for a push that will not come."""
    backlog = 2 * WAKE_TOKENS_MAX
    ran.clear()
    async with db(info={"queue": queue}) as session:
        for n in range(backlog):
            await enqueue(session, note, n=n)
        await commit(session)

    async def all_ran() -> bool:  # in no set order: they share one score in the queue
        return len(ran) >= backlog

    async with _worker(settings, max_jobs=1):
        await eventually(all_ran, within_s=POLL_DELAY_S / 4)
    assert sorted(ran) == list(range(backlog))


async def test_a_push_from_a_clock_ahead_of_redis_still_starts_at_once(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By Redis's clock, which the armed claim reads, the job is not due yet; the
    token it came with makes the worker claim again by its own clock."""
    ahead_ms = 5_000
    real_now_ms = now_ms
    monkeypatch.setattr(wakeup, "now_ms", lambda: real_now_ms() + ahead_ms)
    monkeypatch.setattr(enqueue_module, "now_ms", lambda: real_now_ms() + ahead_ms)
    ran.clear()
    async with _worker(settings):
        await eventually(lambda: _blocked_with_a_claim_behind(queue))
        job_id = await _enqueue(db, queue, n=7)
        await _succeeds(db, job_id)
    assert ran == [7]


async def test_a_stop_that_comes_with_a_wake_still_stops_the_worker(
    settings: Settings, queue: ArqRedis
) -> None:
    """An idle worker's loop waits for a wake (a push, or one of its jobs ending). A
    stop (Arq cancels the main task on a signal) that lands in the same turn of the
    event loop as a wake must still stop it: Python 3.11's `asyncio.wait_for` returned
    the wake and dropped the cancellation, and the worker ran on after its stop."""
    async with _worker(settings) as worker:
        await eventually(lambda: _blocked_with_a_claim_behind(queue))
        await asyncio.sleep(0.1)  # the poll loop is back in its wait
        assert worker.main_task is not None and isinstance(worker, wakeup.WakeUpWorker)
        worker._wake.set()  # as a finished job does
        worker.main_task.cancel()  # as a stop signal does
        stopped, _ = await asyncio.wait({worker.main_task}, timeout=10)
        assert worker.main_task in stopped and worker.main_task.cancelled()
        # It took its armed claim back on the way out, as any stop does.
        assert not await queue.keys(f"{wake_key(settings.queue_name)}:*")


async def test_a_stopped_worker_leaves_no_claim_or_mark_behind(
    settings: Settings, db: async_sessionmaker[AsyncSession], queue: ArqRedis, run_worker: RunWorker
) -> None:
    """A worker stopped while its claim waits takes the claim back: a job pushed after
    it stopped is free for the next worker, and the stop mark is gone."""
    ran.clear()
    async with _worker(settings):
        await eventually(lambda: _blocked_with_a_claim_behind(queue))
    job_id = await _enqueue(db, queue, n=3)
    await asyncio.sleep(0.2)
    assert not await queue.keys(f"{wake_key(settings.queue_name)}:*")
    assert (await load(db, job_id)).status == JobStatus.QUEUED
    await run_worker(functions=[note.arq_function(settings)], cron_jobs=[])
    assert ran == [3]
    assert await status_is(db, job_id, JobStatus.SUCCEEDED)


async def _blocked_with_a_claim_behind(queue: ArqRedis) -> bool:
    """A client blocks on BLPOP with a command waiting in its buffer (the claim)."""
    clients = await queue.client_list()
    return any(c["cmd"] == "blpop" and "b" in c["flags"] and int(c["qbuf"]) > 0 for c in clients)
