"""Start jobs the moment they are pushed, instead of at the worker's next poll.

Each push of a job that is due now also LPUSHes a token to `<queue>:wake` (capped
at WAKE_TOKENS_MAX by LTRIM, so the list never grows); a worker with free slots
blocks on BLPOP of that list with its claim sent right behind it, so Redis claims
the pushed job as the token arrives and the job reaches the worker in the BLPOP's
answer (in burst mode the worker polls once woken instead). Cost to Redis: one
LPUSH and one LTRIM inside the push's script (no extra round trip), one BLPOP and
one claim per token on a connection each worker keeps blocked, and no polling
traffic while idle beyond a few commands per `poll_delay` (the fallback for
deferred jobs). A worker also polls again as soon as one of its jobs finishes, so
under load it never sits out a poll delay while the queue is full.

What a claim takes and reads is in `claim`; a job's end is written with those of
the worker's other jobs that end meanwhile (`finish`); the wake list's name and the
queue's clock, which the push shares, are in `wakelist`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from signal import Signals
from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.worker import Worker
from redis.exceptions import NoScriptError, RedisError

from docdigest.core.batch import GroupCommit
from docdigest.jobs.claim import (
    CLAIM_SCRIPT,
    CLAIM_SHA,
    CLAIMED_FIELDS,
    answering_claimed_reads,
    with_claimed_read,
)
from docdigest.jobs.finish import Finish, queue_finish
from docdigest.jobs.wakelist import now_ms, wake_key

log = logging.getLogger("docdigest.jobs")


class WakeUpWorker(Worker):
    """Arq's worker, woken by pushes and by its own finished jobs rather than a timer.

    While it has free slots and is not in burst mode, its claim waits in Redis: the
    listener sends BLPOP of the wake list and the claim together, so Redis runs the
    claim the moment a push's token arrives, and the job reaches the worker with the
    wake, one round trip after the push instead of two (see `_armed_round`).
    """

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
        self._ends: GroupCommit[Finish, None] = GroupCommit(self._write_ends)
        # Slots that claims in flight may fill: the poll loop's and the listener's
        # claim for the same free slots, so each holds its own until it is answered.
        self._held = 0
        # The armed claim: the mark that stops it, whether its round is over (set)
        # or still waiting in Redis (clear), and whether the listener may arm: only
        # once a poll has found no more due jobs than it had slots for, and no slot
        # has come free since (a claim armed while due jobs wait would wait for a
        # push instead of taking them).
        self._stop_key = f"{wake_key(self.queue_name)}:{uuid.uuid4().hex}"
        self._round_over = asyncio.Event()
        self._round_over.set()
        self._may_arm = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._disarming: asyncio.Task[None] | None = None

    def _free_slots(self) -> int:
        """Slots neither running a job nor held by a claim in flight."""
        slots = self.max_jobs - self.job_counter - self._held
        if self.burst and self.max_burst_jobs >= 0:
            slots = min(slots, self.max_burst_jobs - self._jobs_started())
        return slots

    async def _poll_iteration(self) -> None:
        """Arq's poll, with its read (ZRANGEBYSCORE, then per job WATCH, EXISTS,
        ZSCORE, MULTI/EXEC) and each job's first read in `run_job` done by one
        script for as many jobs as there are free slots, and the abort check kept to
        Arq's own pace of once per poll delay rather than after every finished job."""
        slots = self._free_slots()
        if not self.allow_pick_jobs or slots <= 0 or await self._claim(slots) < slots:
            self._may_arm.set()
        if self.allow_abort_jobs and self.loop.time() >= self._next_abort_check:
            self._next_abort_check = self.loop.time() + self.poll_delay_s
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # an error in run_job itself surfaces here, as in Arq
        await self.heart_beat()

    def _claim_arguments(self, now: int | str, slots: int) -> list[Any]:
        return [
            now,
            slots,
            in_progress_key_prefix,
            int(self.in_progress_timeout_s * 1000),
            self._queue_read_offset,
            self.queue_read_limit + self.max_jobs,
            job_key_prefix,
            retry_key_prefix,
            abort_jobs_ss if self.allow_abort_jobs else "",
        ]

    async def _claim(self, slots: int) -> int:
        """Claim up to `slots` due jobs by this worker's clock and start them."""
        claim = self.pool.register_script(CLAIM_SCRIPT)
        arguments = self._claim_arguments(now_ms(), slots)
        self._held += slots
        try:
            return await self._start_claimed(await claim(keys=[self.queue_name], args=arguments))
        finally:
            self._held -= slots
            self._slot_freed.set()  # for the listener, if this claim left slots free

    async def _start_claimed(self, claimed: list[Any]) -> int:
        """Start a task for each job a claim took; returns how many it took."""
        taken, self._queued = claimed
        for at in range(0, len(taken), CLAIMED_FIELDS):
            job_id_b, score, *answers = taken[at : at + CLAIMED_FIELDS]
            job_id = job_id_b.decode()
            # The job's task starts with its first read in hand (see ClaimedRead).
            context = with_claimed_read(job_id, answers, self.allow_abort_jobs)
            # Free (the claim took no more jobs than free slots), so this returns
            # without giving the loop a turn: the slot counts stay exact.
            await self.sem.acquire()
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, int(float(score))), context=context)
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
        return len(taken) // CLAIMED_FIELDS

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        """Arq's graceful stop, which picks no more jobs: nor does the armed claim."""
        super().handle_sig_wait_for_completion(signum)
        self._disarming = self.loop.create_task(self._stop_claiming())

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._may_arm.clear()  # the poll loop takes the next due job first
        self._wake.set()
        self._slot_freed.set()

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
        end = Finish(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )
        await self._ends.submit(end)

    async def _write_ends(self, ends: Sequence[Finish]) -> list[None]:
        async with self.pool.pipeline(transaction=True) as tr:
            for end in ends:
                queue_finish(tr, self.queue_name, end)
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
        pool.pipeline = answering_claimed_reads(pool.pipeline)
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
            await self._stop_claiming()
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
        # Not `asyncio.wait_for`: on Python 3.11 it returns a wake that comes in the
        # same turn as a stop and drops the stop's cancellation, so the worker ran on.
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            # The poll that follows is this loop's own (a deferred job due, or the
            # poll delay): it needs the slots the listener's claim holds.
            await self._disarm()

    async def _listen(self) -> None:
        key = wake_key(self.queue_name)
        while True:
            try:
                if self.burst or not self.allow_pick_jobs or self._stopping:
                    await self._wait_for_push(key)
                elif not self._may_arm.is_set():
                    await self._may_arm.wait()
                elif (slots := self._free_slots()) > 0:
                    await self._armed_round(key, slots)
                else:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
            except RedisError:
                log.warning("wake-up listener lost Redis; polling meanwhile", exc_info=True)
                await asyncio.sleep(1)

    async def _wait_for_push(self, key: str) -> None:
        """Wake the poll loop when a push's token arrives."""
        token = await self.pool.blpop([key], timeout=self._block_s)  # type: ignore[misc]
        if token is not None:
            self._wake.set()

    @property
    def _block_s(self) -> int:
        return max(int(self.poll_delay_s), 1)

    async def _armed_round(self, key: str, slots: int) -> None:
        """Block for a push's token with the claim queued behind the BLPOP.

        Redis runs a client's commands in order, so the claim runs as soon as the
        BLPOP returns: at a push, at the stop mark (`_disarm`), or at the timeout, when
        it is a poll like any other. Its `slots` are held until the round is over, so
        the poll loop never claims them too; Redis's clock decides what is due (see
        the script). A token that brought no job (another worker took it, the
        pusher's clock is ahead of Redis's, or a stop mark came between the two) is
        followed by a claim by this worker's own clock, as the poll loop's would be.
        """
        self._held += slots
        self._round_over.clear()
        try:
            async with self.pool.pipeline(transaction=False) as pipe:
                pipe.blpop([key, self._stop_key], timeout=self._block_s)
                keys = [self.queue_name, self._stop_key]
                pipe.evalsha(CLAIM_SHA, 2, *keys, *self._claim_arguments("", slots))
                popped, claimed = await pipe.execute(raise_on_error=False)
            if isinstance(claimed, NoScriptError):
                # Redis lost the script (a restart): nothing was claimed this round.
                await self.pool.script_load(CLAIM_SCRIPT)
                claimed = [[], self._queued]
            elif isinstance(claimed, Exception):
                raise claimed
            taken = await self._start_claimed(claimed)
            if isinstance(popped, Exception):
                raise popped
            woken = isinstance(popped, list | tuple) and popped[0].decode() == key
            if woken and not taken and self.allow_pick_jobs and not self._stopping:
                await self._claim(slots)  # registers the script again if Redis lost it
        finally:
            self._held -= slots
            self._round_over.set()

    async def _stop_claiming(self) -> None:
        """Claim nothing more: a worker stopped while its claim waits in Redis takes
        that claim back first, so that no job is claimed for a worker that no longer
        runs it. With Redis gone there is nothing to take back, and the stop goes on."""
        self._stopping = True
        with contextlib.suppress(RedisError):
            await self._disarm()

    async def _disarm(self) -> None:
        """End the listener's armed round and wait for it: a stop mark makes its BLPOP
        return and its claim take nothing, unless a push got there first, and then
        the jobs it claimed start as usual. The listener arms again only after the
        poll loop's next poll, which so has every free slot."""
        self._may_arm.clear()
        if self._round_over.is_set():
            return
        async with self.pool.pipeline(transaction=False) as pipe:
            # Two marks: one for the BLPOP, one for the claim to find. A mark that
            # arrives after its round has ended stops the next one, which is harmless.
            pipe.rpush(self._stop_key, 1, 1)
            pipe.pexpire(self._stop_key, 60_000)
            await pipe.execute()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._block_s + 5):
                await self._round_over.wait()


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
