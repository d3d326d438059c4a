"""Enqueue after commit: the ledger row is written in the caller's transaction,
the push to Arq happens only once that transaction commits."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import add_unless_exists, after_commit, utcnow
from docdigest.jobs.context import current_job_id, request_id
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.jobs.wakeup import WAKE_TOKENS_MAX, wake_key
from docdigest.settings import Settings, get_settings

if TYPE_CHECKING:
    from docdigest.jobs.registry import JobSpec

log = logging.getLogger(__name__)


async def enqueue(
    session: AsyncSession,
    spec: JobSpec,
    /,
    *,
    defer_by: timedelta | None = None,
    defer_until: datetime | None = None,
    key: str | None = None,
    **kwargs: Any,
) -> JobRun:
    """Record `spec(**kwargs)` as a job; it reaches the queue when `session` commits.

    With `key`, the job is unique: enqueueing the same key again returns the
    existing row and queues nothing.
    """
    if defer_by is not None and defer_until is not None:
        raise ValueError("use defer_by or defer_until, not both")
    now = utcnow()
    scheduled_at = defer_until or (now + defer_by if defer_by else None)
    run = await add_unless_exists(
        session,
        JobRun,
        {
            "id": uuid.uuid4().hex,
            "function": spec.name,
            "args": kwargs,
            "status": JobStatus.DEFERRED if scheduled_at else JobStatus.QUEUED,
            "attempts": 0,
            "series": 1,
            "max_tries": spec.policy(settings_of(session)).max_tries,
            "key": key,
            "subject": spec.subject_for(kwargs),
            "request_id": request_id.get(),
            "parent_id": current_job_id.get(),
            "enqueued_at": now,
            "scheduled_at": scheduled_at,
        },
    )
    if run is None:
        # The key is taken (by an earlier enqueue, or a concurrent one that committed):
        # that job stands, and nothing new is queued.
        existing = await session.scalar(select(JobRun).where(JobRun.key == key))
        if existing is None:
            raise RuntimeError(f"job key {key!r} is taken, yet no job holds it")
        return existing

    queue: ArqRedis | None = session.info.get("queue")
    if queue is not None:
        after_commit(session, lambda: push(queue, run))
    return run


#: A reserved keyword in each pushed job: what the worker would otherwise read from the
#: ledger before starting (so the start is recorded without the job waiting for it).
LEDGER_META = "_ledger"


def ledger_meta(run: JobRun) -> dict[str, Any]:
    return {
        "request_id": run.request_id,
        "parent_id": run.parent_id,
        "subject": run.subject,
        "series": run.series,
    }


def settings_of(session: AsyncSession) -> Settings:
    settings = session.info.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


async def push(queue: ArqRedis, run: JobRun) -> bool:
    """Hand a ledger row to Arq. The Arq job id is the ledger id, so pushing twice is a no-op.

    What Arq's `enqueue_job` does, plus a wake-up token for idle workers, in one script.
    A failed push loses nothing: the row stays pending and the reconciler pushes it later.
    """
    try:
        return await _push(queue, run)
    except Exception:
        log.warning("push failed, the reconciler will retry", extra={"job_id": run.id})
        return False


# One round trip instead of three (WATCH, EXISTS, then MULTI/EXEC): Redis runs the
# script atomically, so no other push can come between the check and the writes.
_PUSH_SCRIPT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
end
return 1
"""


async def _push(queue: ArqRedis, run: JobRun) -> bool:
    now_ms = timestamp_ms()
    score = to_unix_ms(run.scheduled_at) if run.scheduled_at else now_ms
    expires_ms = max(score - now_ms, 0) + queue.expires_extra_ms
    payload = serialize_job(
        run.function,
        (),
        {**run.args, LEDGER_META: ledger_meta(run)},
        None,
        now_ms,
        serializer=queue.job_serializer,
    )
    script = queue.register_script(_PUSH_SCRIPT)
    pushed = await script(
        keys=[
            job_key_prefix + run.id,
            result_key_prefix + run.id,
            queue.default_queue_name,
            wake_key(queue.default_queue_name),
        ],
        args=[expires_ms, payload, score, run.id, int(score <= now_ms), WAKE_TOKENS_MAX],
    )
    return bool(pushed)
