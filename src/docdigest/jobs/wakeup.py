"""Start jobs the moment they are pushed, instead of at the worker's next poll.

Each push of a job that is due now also LPUSHes a token to `<queue>:wake` (capped
at WAKE_TOKENS_MAX by LTRIM, so the list never grows); an idle worker blocks on
BLPOP of that list and polls as soon as a token arrives. Cost to Redis: one
LPUSH and one LTRIM inside the push's script (no extra round trip), one BLPOP per
token on a connection each worker keeps blocked, and no polling traffic while
idle beyond one command per `poll_delay` (the fallback for deferred jobs).
A worker also polls again as soon as one of its jobs finishes, so under load it
never sits out a poll delay while the queue is full.

A job's end (Arq's `finish_job`: its result stored, its keys removed, its queue
entry gone) is written together with those of the worker's other jobs that end
meanwhile, in one MULTI/EXEC: under load, one round trip for many jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.utils import to_ms
from arq.worker import Worker
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from docdigest.core.batch import GroupCommit

log = logging.getLogger("docdigest.jobs")

WAKE_TOKENS_MAX = 64

# Claim up to ARGV[2] due jobs for this worker in one round trip: walk the due part
# of the queue from its head, skip jobs another worker holds (Arq's in-progress key,
# which every Arq worker respects) and set that key on each job taken. For each job
# taken it also does Arq's first read of a job (`Worker.run_job`: the job, its try
# count incremented, and its abort request removed), which would otherwise cost the
# job a round trip of its own before it starts. Returns, per job, its id, score and
# those four answers, then the queue's length (a burst worker stops at zero).
_CLAIM_SCRIPT = """
local queue, now, slots, prefix = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ttl, offset, scan = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local job_prefix, retry_prefix, abort_set = ARGV[7], ARGV[8], ARGV[9]
local taken = {}
while slots > 0 and scan > 0 do
  local due = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES',
                         'LIMIT', offset, math.min(scan, 100))
  if #due == 0 then break end
  for i = 1, #due, 2 do
    local id = due[i]
    if slots > 0 and redis.call('SET', prefix .. id, '1', 'NX', 'PX', ttl) then
      local retry = retry_prefix .. id
      taken[#taken + 1] = id
      taken[#taken + 1] = due[i + 1]
      taken[#taken + 1] = redis.call('GET', job_prefix .. id)
      taken[#taken + 1] = redis.call('INCR', retry)
      taken[#taken + 1] = redis.call('EXPIRE', retry, 88400)
      taken[#taken + 1] = abort_set ~= '' and redis.call('ZREM', abort_set, id) or 0
      slots = slots - 1
    end
  end
  offset = offset + #due / 2
  scan = scan - #due / 2
end
return {taken, redis.call('ZCARD', queue)}
"""
_CLAIMED_FIELDS = 6

#: A job's first read, done by the claim, for `run_job` of that job's task to take.
_claimed_read: contextvars.ContextVar[ClaimedRead | None] = contextvars.ContextVar(
    "claimed_read", default=None
)


class ClaimedRead:
    """What Arq's `run_job` reads first, answered from the claim instead of Redis.

    `run_job` opens a MULTI pipeline and queues GET of the job, INCR and EXPIRE of
    its try counter and, when aborts are allowed, ZREM of it from the abort set. The
    claim script did exactly those, so this pipeline checks that the same commands
    are queued and answers them without a round trip. Any other command sequence is
    an Arq this was not written for, and fails loudly rather than count a try twice.
    """

    def __init__(self, job_id: str, answers: list[Any], abort: bool) -> None:
        self.expected = [
            ("get", job_key_prefix + job_id),
            ("incr", retry_key_prefix + job_id),
            ("expire", retry_key_prefix + job_id),
        ]
        if abort:
            self.expected.append(("zrem", abort_jobs_ss))
        self.answers = answers[: len(self.expected)]
        self.queued: list[tuple[str, str]] = []

    async def __aenter__(self) -> ClaimedRead:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def _queue(self, command: str, key: str) -> ClaimedRead:
        self.queued.append((command, key))
        return self

    def get(self, key: str) -> ClaimedRead:
        return self._queue("get", key)

    def incr(self, key: str) -> ClaimedRead:
        return self._queue("incr", key)

    def expire(self, key: str, _seconds: int) -> ClaimedRead:
        return self._queue("expire", key)

    def zrem(self, key: str, *_members: str) -> ClaimedRead:
        return self._queue("zrem", key)

    async def execute(self) -> list[Any]:
        if self.queued != self.expected:
            raise RuntimeError(
                f"Arq's first read of a job changed ({self.queued} instead of "
                f"{self.expected}); the claim script answers only the latter"
            )
        return self.answers


def _answering_claimed_reads(pipeline: Callable[..., Any]) -> Callable[..., Any]:
    """The pool's `pipeline`, except that a job's first one in `run_job` is its claimed read."""

    def claimed_or_real(*args: Any, **kwargs: Any) -> Any:
        read = _claimed_read.get()
        if read is None:
            return pipeline(*args, **kwargs)
        _claimed_read.set(None)  # only the first pipeline of the job's task
        return read

    return claimed_or_real


@dataclass(frozen=True)
class _Finish:
    """Arq's `finish_job` arguments for one job."""

    job_id: str
    finish: bool
    result_data: bytes | None
    result_timeout_s: float | None
    keep_result_forever: bool
    incr_score: int | None
    keep_in_progress: float | None


def _queue_finish(tr: Pipeline, queue_name: str, end: _Finish) -> None:
    """The commands of Arq's `finish_job` for one job (Arq 0.26-0.28), queued on `tr`."""
    in_progress_key = in_progress_key_prefix + end.job_id
    delete_keys = []
    if end.keep_in_progress is None:
        delete_keys.append(in_progress_key)
    else:
        tr.pexpire(in_progress_key, to_ms(end.keep_in_progress))
    if end.finish:
        if end.result_data:
            expire = None if end.keep_result_forever else end.result_timeout_s
            tr.set(result_key_prefix + end.job_id, end.result_data, px=to_ms(expire))
        delete_keys += [retry_key_prefix + end.job_id, job_key_prefix + end.job_id]
        tr.zrem(abort_jobs_ss, end.job_id)
        tr.zrem(queue_name, end.job_id)
    elif end.incr_score:
        tr.zincrby(queue_name, end.incr_score, end.job_id)
    if delete_keys:
        tr.delete(*delete_keys)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_ms(at: datetime) -> int:
    """The queue score of a job due at `at`: its time in milliseconds, rounded up.

    Arq rounds both a job's time and the clock it compares it with to the nearest
    millisecond, so a job could start up to a millisecond before its time; rounded
    up here and the clock rounded down (`now_ms`), it never starts early.
    """
    microseconds = (at - _EPOCH) // timedelta(microseconds=1)
    return -(-microseconds // 1000)


def now_ms() -> int:
    """The clock in whole milliseconds, rounded down: a job is due once it reaches its score."""
    return time.time_ns() // 1_000_000


def wake_key(queue_name: str) -> str:
    return f"{queue_name}:wake"


class WakeUpWorker(Worker):
    """Arq's worker, woken by pushes and by its own finished jobs rather than a timer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _use_uvloop_when_idle()
        super().__init__(*args, **kwargs)
        arq_log = logging.getLogger("arq.worker")
        if arq_log.level == logging.NOTSET:
            # The wrapper's "job start"/"job done" lines say more than Arq's per-job
            # lines; keeping both costs two formatted lines per job for nothing new.
            arq_log.setLevel(logging.WARNING)
        self.ctx["worker"] = self
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._next_abort_check = 0.0
        self._queued = 0  # the queue's length at the last claim
        self._ends: GroupCommit[_Finish, None] = GroupCommit(self._write_ends)

    async def _poll_iteration(self) -> None:
        """Arq's poll, with its read (ZRANGEBYSCORE, then per job WATCH, EXISTS,
        ZSCORE, MULTI/EXEC) and each job's first read in `run_job` done by one
        script for as many jobs as there are free slots, and the abort check kept to
        Arq's own pace of once per poll delay rather than after every finished job."""
        slots = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            slots = min(slots, self.max_burst_jobs - self._jobs_started())
        if self.allow_pick_jobs and slots > 0:
            await self._claim(slots)
        if self.allow_abort_jobs and self.loop.time() >= self._next_abort_check:
            self._next_abort_check = self.loop.time() + self.poll_delay_s
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # an error in run_job itself surfaces here, as in Arq
        await self.heart_beat()

    async def _claim(self, slots: int) -> None:
        claim = self.pool.register_script(_CLAIM_SCRIPT)
        taken, self._queued = await claim(
            keys=[self.queue_name],
            args=[
                now_ms(),
                slots,
                in_progress_key_prefix,
                int(self.in_progress_timeout_s * 1000),
                self._queue_read_offset,
                self.queue_read_limit + self.max_jobs,
                job_key_prefix,
                retry_key_prefix,
                abort_jobs_ss if self.allow_abort_jobs else "",
            ],
        )
        for at in range(0, len(taken), _CLAIMED_FIELDS):
            job_id_b, score, *answers = taken[at : at + _CLAIMED_FIELDS]
            job_id = job_id_b.decode()
            # The job's task starts with its first read in hand (see ClaimedRead).
            context = contextvars.copy_context()
            context.run(_claimed_read.set, ClaimedRead(job_id, answers, self.allow_abort_jobs))
            await self.sem.acquire()  # free: there were `slots` of them
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, int(float(score))), context=context)
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._wake.set()

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """Arq's `finish_job`, in one MULTI/EXEC with the ends of the worker's other
        jobs that arrive while a write is in flight (a lone end is written at once)."""
        end = _Finish(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )
        await self._ends.submit(end)

    async def _write_ends(self, ends: Sequence[_Finish]) -> list[None]:
        async with self.pool.pipeline(transaction=True) as tr:
            for end in ends:
                _queue_finish(tr, self.queue_name, end)
            await tr.execute()
        return [None] * len(ends)

    async def main(self) -> None:
        # Arq's main(), with its fixed-interval poll replaced by `_wait`.
        if self._pool is None:
            from arq.connections import create_pool

            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        pool: Any = self._pool
        pool.pipeline = _answering_claimed_reads(pool.pipeline)
        log.info("worker starting for %d functions", len(self.functions))
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._listener = asyncio.create_task(self._listen())
        try:
            while True:
                self._wake.clear()
                await self._poll_iteration()
                if self.burst:
                    if 0 <= self.max_burst_jobs <= self._jobs_started():
                        await asyncio.gather(*self.tasks.values())
                        return
                    if self._queued == 0:
                        await asyncio.gather(*self.tasks.values())
                        return
                await self._wait()
        finally:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _wait(self) -> None:
        timeout = self.poll_delay_s
        if not self.tasks:
            # Idle: sleep no longer than until the next deferred job is due.
            now = now_ms()
            head = await self.pool.zrangebyscore(
                self.queue_name, min=now, max="+inf", start=0, num=1, withscores=True
            )
            if head:
                timeout = min(timeout, max((head[0][1] - now_ms()) / 1000, 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _listen(self) -> None:
        key = wake_key(self.queue_name)
        while True:
            try:
                token = await self.pool.blpop([key], timeout=max(int(self.poll_delay_s), 1))  # type: ignore[misc]
            except RedisError:
                log.warning("wake-up listener lost Redis; polling meanwhile", exc_info=True)
                await asyncio.sleep(1)
                continue
            if token is not None:
                self._wake.set()


def _use_uvloop_when_idle() -> None:
    """uvloop for a worker process that owns its loop (not inside tests' running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        try:
            import uvloop
        except ImportError:
            return
        asyncio.set_event_loop(uvloop.new_event_loop())
