"""Make Redis agree with the ledger again after Redis lost data or a worker crashed.

Redis is transport, the ledger is the record. For each unfinished ledger row:
- a worker holds it (Arq's in-progress key): leave it alone, never run it twice;
- Arq kept a result for it: the attempt ended but its ledger write was lost
  (a crash inside the worker's batching window), so copy the outcome over;
- it is pending but Arq has no job key (Redis restarted or was flushed, or a crash
  between commit and push), or it is `running` with neither key well past its
  timeout: push it again under the same id, a no-op if it is there after all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.cron import CronJob, cron
from arq.jobs import JobResult, deserialize_result
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import commit, utcnow
from docdigest.jobs.enqueue import push_after_commit
from docdigest.jobs.models import PENDING_STATUSES, JobRun, JobStatus
from docdigest.jobs.registry import JobSpec

log = logging.getLogger("docdigest.jobs")

#: Beyond a job's timeout, how long a `running` row may lack its Arq keys before a re-push.
RUNNING_GRACE = timedelta(seconds=30)
DEFAULT_TIMEOUT_S = 120.0
CHUNK = 500


async def reconcile(
    session: AsyncSession, queue: ArqRedis, *, timeouts: Mapping[str, float] | None = None
) -> int:
    """Repair unfinished ledger rows; returns how many. Pushes happen when `session` commits."""
    rows = list(
        await session.scalars(
            select(JobRun).where(JobRun.status.in_([*PENDING_STATUSES, JobStatus.RUNNING]))
        )
    )
    repaired = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        # One MULTI per chunk: a worker's finish (job key gone, result set) is seen whole.
        async with queue.pipeline(transaction=True) as pipe:
            for run in chunk:
                pipe.exists(in_progress_key_prefix + run.id)
                pipe.exists(job_key_prefix + run.id)
                pipe.get(result_key_prefix + run.id)
            found: list[Any] = await pipe.execute()
        for i, run in enumerate(chunk):
            in_progress, queued, result = found[3 * i : 3 * i + 3]
            if in_progress:
                continue
            if result is not None:
                if _repair_from_result(run, _load(queue, result)):
                    repaired += 1
                    continue
                # A result from before a requeue: it would make Arq refuse the push.
                await queue.delete(result_key_prefix + run.id)
            if queued or not _lost(run, timeouts or {}):
                continue
            if run.status == JobStatus.RUNNING:
                run.status = JobStatus.QUEUED
            push_after_commit(session, queue, [run])
            repaired += 1
    if repaired:
        log.info("reconciled jobs", extra={"repaired": repaired})
    return repaired


def _lost(run: JobRun, timeouts: Mapping[str, float]) -> bool:
    if run.status != JobStatus.RUNNING:
        return True
    limit = timedelta(seconds=timeouts.get(run.function, DEFAULT_TIMEOUT_S)) + RUNNING_GRACE
    return run.started_at is None or utcnow() - run.started_at > limit


def _load(queue: ArqRedis, raw: bytes) -> JobResult | None:
    try:
        return deserialize_result(raw, deserializer=queue.job_deserializer)
    except Exception:
        return None


def _repair_from_result(run: JobRun, result: JobResult | None) -> bool:
    """Copy a finished attempt's outcome into the ledger; False if the result is stale."""
    if result is None or _aware(result.enqueue_time) < run.enqueued_at - timedelta(seconds=1):
        return False
    run.attempts = max(run.attempts, result.job_try or 1)
    run.finished_at = _aware(result.finish_time)
    if result.success:
        run.status = JobStatus.SUCCEEDED
        return True
    error = result.result
    cancelled = type(error).__name__ == "CancelledError"
    run.status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
    run.error_type = type(error).__name__
    run.error_message = str(error)[:2000] or run.error_type
    return True


def _aware(moment: datetime) -> datetime:
    # Arq builds these with the ARQ_TIMEZONE (or none: the local time) of its process.
    return moment.astimezone(UTC)


def reconcile_cron(specs: list[JobSpec]) -> CronJob:
    """Every minute, on one worker at a time (a unique cron id per minute)."""
    timeouts = {spec.name: spec.timeout_s for spec in specs}

    async def reconcile_jobs(ctx: dict[str, Any]) -> int:
        async with ctx["sessionmaker"]() as session:
            repaired = await reconcile(session, ctx["redis"], timeouts=timeouts)
            await commit(session)
        return repaired

    return cron(
        reconcile_jobs,
        name="reconcile_jobs",
        second=0,
        unique=True,
        timeout=60,
        max_tries=1,
        keep_result=0,
    )
