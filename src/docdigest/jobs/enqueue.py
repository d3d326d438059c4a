"""Enqueue after commit: the ledger row is written in the caller's transaction,
the push to Arq happens only once that transaction commits."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.exceptions import NoScriptError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import after_commit, utcnow
from docdigest.core.ids import new_id
from docdigest.core.rows import add_all_unless_exist
from docdigest.jobs.context import current_job_id, request_id
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.jobs.wakelist import WAKE_TOKENS_MAX, due_ms, now_ms, wake_key
from docdigest.settings import Settings, get_settings

if TYPE_CHECKING:
    from docdigest.jobs.registry import JobSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One job to record: `spec(**kwargs)`, when it may start, and its unique key.

    The request and the job it was enqueued from are read when the call is made, so
    a call built on behalf of a request keeps that request's id.
    """

    spec: JobSpec
    kwargs: dict[str, Any]
    defer_by: timedelta | None = None
    defer_until: datetime | None = None
    key: str | None = None
    request_id: str | None = field(default_factory=request_id.get)
    parent_id: str | None = field(default_factory=current_job_id.get)

    def __post_init__(self) -> None:
        if self.defer_by is not None and self.defer_until is not None:
            raise ValueError("use defer_by or defer_until, not both")


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
    [run] = await enqueue_all(session, [Call(spec, kwargs, defer_by, defer_until, key)])
    return run


async def enqueue_all(session: AsyncSession, calls: Sequence[Call]) -> list[JobRun]:
    """`enqueue` for several jobs, with one insert; the runs come back in `calls` order."""
    rows = ledger_rows(calls, settings_of(session))
    added = {run.id: run for run in await add_all_unless_exist(session, JobRun, rows)}
    runs = []
    for row in rows:
        run = added.get(row["id"])
        if run is None:
            # The key is taken (by an earlier enqueue, or a concurrent one that
            # committed): that job stands, and nothing new is queued.
            key = row["key"]
            run = await session.scalar(select(JobRun).where(JobRun.key == key))
            if run is None:
                raise RuntimeError(f"job key {key!r} is taken, yet no job holds it")
        runs.append(run)
    queue: ArqRedis | None = session.info.get("queue")
    if queue is not None and added:
        push_after_commit(session, queue, list(added.values()))
    return runs


def ledger_rows(
    calls: Sequence[Call], settings: Settings, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The ledger rows that record `calls`, ready to insert (each with a new id)."""
    now = now or utcnow()
    return [_ledger_row(call, settings, now) for call in calls]


def _ledger_row(call: Call, settings: Settings, now: datetime) -> dict[str, Any]:
    scheduled_at = call.defer_until or (now + call.defer_by if call.defer_by else None)
    return {
        "id": new_id(),
        "function": call.spec.name,
        "args": call.kwargs,
        "status": JobStatus.DEFERRED if scheduled_at else JobStatus.QUEUED,
        "attempts": 0,
        "series": 1,
        "max_tries": call.spec.policy(settings).max_tries,
        "key": call.key,
        "subject": call.spec.subject_for(call.kwargs),
        "request_id": call.request_id,
        "parent_id": call.parent_id,
        "enqueued_at": now,
        "scheduled_at": scheduled_at,
    }


class _Pushes:
    """The after-commit callback that pushes a transaction's new jobs."""

    def __init__(self, queue: ArqRedis) -> None:
        self.queue = queue
        self.runs: list[JobRun] = []

    async def __call__(self) -> None:
        await push_all(self.queue, self.runs)


def push_after_commit(session: AsyncSession, queue: ArqRedis, runs: list[JobRun]) -> None:
    """Push `runs` once `session` commits (dropped on rollback). Every run one
    transaction queues goes to Redis in the same round trip."""
    waiting = session.info.get("after_commit", ())
    pushes = next((callback for callback in waiting if isinstance(callback, _Pushes)), None)
    if pushes is None:
        pushes = _Pushes(queue)
        after_commit(session, pushes)
    pushes.runs.extend(runs)


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
    return await push_all(queue, [run]) == 1


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
_PUSH_SHA = hashlib.sha1(_PUSH_SCRIPT.encode()).hexdigest()


async def push_all(queue: ArqRedis, runs: Sequence[JobRun]) -> int:
    """`push` for several runs in one round trip; returns how many were pushed."""
    if not runs:
        return 0
    try:
        pushed = await _run_pushes(queue, [_push_arguments(queue, run) for run in runs])
    except Exception:
        log.warning(
            "push failed, the reconciler will retry", extra={"job_ids": [run.id for run in runs]}
        )
        return 0
    return sum(map(bool, pushed))


async def _run_pushes(queue: ArqRedis, pushes: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """The push script for each of `pushes` (its keys and arguments), in one round trip.

    redis-py's `Script` is built anew for each call, and pipelined it asks Redis whether
    it holds the script first, a round trip of its own on every batch. Here the script's
    hash is sent at once, and the script itself only when Redis answers that it lacks it
    (after a restart, say): the pushes it refused are then sent again. Nothing of a
    refused push ran.
    """
    results = await _evalsha_all(queue, pushes)
    refused = [at for at, result in enumerate(results) if isinstance(result, NoScriptError)]
    if refused:
        await queue.script_load(_PUSH_SCRIPT)
        again = await _evalsha_all(queue, [pushes[at] for at in refused])
        for at, result in zip(refused, again, strict=True):
            results[at] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def _evalsha_all(queue: ArqRedis, pushes: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """Each push's script by its hash; an error is its push's result, not raised."""
    if len(pushes) == 1:
        # One push needs no pipeline, whose own bookkeeping costs more than the push.
        [(keys, args)] = pushes
        try:
            answer = queue.evalsha(_PUSH_SHA, len(keys), *keys, *args)
            return [await cast("Awaitable[Any]", answer)]
        except Exception as exc:
            return [exc]
    async with queue.pipeline(transaction=False) as pipe:
        for keys, args in pushes:
            pipe.evalsha(_PUSH_SHA, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _push_arguments(queue: ArqRedis, run: JobRun) -> tuple[list[str], list[Any]]:
    now = now_ms()
    score = due_ms(run.scheduled_at) if run.scheduled_at else now
    expires_ms = max(score - now, 0) + queue.expires_extra_ms
    payload = serialize_job(
        run.function,
        (),
        {**run.args, LEDGER_META: ledger_meta(run)},
        None,
        now,
        serializer=queue.job_serializer,
    )
    keys = [
        job_key_prefix + run.id,
        result_key_prefix + run.id,
        queue.default_queue_name,
        wake_key(queue.default_queue_name),
    ]
    return keys, [expires_ms, payload, score, run.id, int(score <= now), WAKE_TOKENS_MAX]
