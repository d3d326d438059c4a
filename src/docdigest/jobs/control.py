"""Operator actions on jobs: requeue dead letters, cancel queued or running work.

Like services, these never commit: the ledger change and the push to Arq happen
when the caller's session commits (the CLI and the admin API each commit once).
"""

from __future__ import annotations

from arq.connections import ArqRedis
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.exceptions import WatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import after_commit, utcnow
from docdigest.core.errors import Conflict, NotFound
from docdigest.jobs.enqueue import push
from docdigest.jobs.models import PENDING_STATUSES, JobRun, JobStatus

REQUEUEABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
CANCELLABLE = (*PENDING_STATUSES, JobStatus.RUNNING)


async def get_run(session: AsyncSession, job_id: str) -> JobRun:
    run = await session.get(JobRun, job_id)
    if run is None:
        raise NotFound(f"no job {job_id}")
    return run


async def requeue(session: AsyncSession, job_id: str) -> JobRun:
    """Run a failed or cancelled job again with the same arguments, as a new series of tries.

    The job keeps its id (the ledger id is the Arq job id); Arq refuses an id whose
    result it still keeps, so that result is cleared right before the push.
    """
    run = await get_run(session, job_id)
    if run.status not in REQUEUEABLE:
        raise Conflict(
            f"job {job_id} is {run.status}; only failed or cancelled jobs can be requeued"
        )
    run.status = JobStatus.QUEUED
    run.series += 1
    run.attempts = 0
    run.enqueued_at = utcnow()
    run.scheduled_at = None
    run.started_at = None
    run.finished_at = None
    run.error_type = run.error_message = run.error_traceback = None

    queue: ArqRedis | None = session.info.get("queue")
    if queue is not None:

        async def push_fresh() -> None:
            await queue.delete(result_key_prefix + job_id, retry_key_prefix + job_id)
            # A stale abort request would kill the new series before it starts.
            await queue.zrem(abort_jobs_ss, job_id)
            await push(queue, run)

        after_commit(session, push_fresh)
    return run


async def requeue_failed(session: AsyncSession, function: str | None = None) -> int:
    """Requeue every dead letter (optionally of one function); returns how many."""
    query = select(JobRun.id).where(JobRun.status == JobStatus.FAILED)
    if function is not None:
        query = query.where(JobRun.function == function)
    ids = list(await session.scalars(query))
    for job_id in ids:
        await requeue(session, job_id)
    return len(ids)


async def cancel(session: AsyncSession, queue: ArqRedis, job_id: str) -> JobRun:
    """Cancel a queued, deferred, retrying or running job.

    Waiting jobs leave the queue at once. A running job gets Arq's abort request;
    its worker cancels it within one poll and the wrapper records `cancelled` too.
    """
    run = await get_run(session, job_id)
    if run.status not in CANCELLABLE:
        raise Conflict(f"job {job_id} is {run.status}; it can no longer be cancelled")
    if not await _remove_waiting(queue, job_id):
        await queue.zadd(abort_jobs_ss, {job_id: utcnow().timestamp() * 1000})
    run.status = JobStatus.CANCELLED
    run.finished_at = utcnow()
    run.error_type = "Cancelled"
    run.error_message = "cancelled by an operator"
    run.error_traceback = None
    return run


async def _remove_waiting(queue: ArqRedis, job_id: str) -> bool:
    """Take a job that has not started off the queue; False if a worker holds it."""
    in_progress = in_progress_key_prefix + job_id
    async with queue.pipeline(transaction=True) as pipe:
        await pipe.watch(in_progress)
        if await pipe.exists(in_progress):
            await pipe.reset()  # type: ignore[no-untyped-call]
            return False
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.zrem(queue.default_queue_name, job_id)
        pipe.delete(job_key_prefix + job_id, retry_key_prefix + job_id)
        try:
            await pipe.execute()
        except WatchError:
            return False
    return True
