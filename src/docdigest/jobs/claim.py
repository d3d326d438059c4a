"""A worker's claim: its due jobs taken in one round trip, each with its first read.

Arq's worker reads the queue's head, then takes each job with a WATCH, EXISTS,
ZSCORE and MULTI/EXEC, and reads it again when it starts. Here one script does all
of that for as many jobs as the worker has free slots, and `ClaimedRead` hands each
job's first read to Arq's `run_job` without a round trip of its own.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

from arq.constants import abort_jobs_ss, job_key_prefix, retry_key_prefix

# Claim up to ARGV[2] due jobs for this worker in one round trip: walk the due part
# of the queue from its head, skip jobs another worker holds (Arq's in-progress key,
# which every Arq worker respects) and set that key on each job taken. For each job
# taken it also does Arq's first read of a job (`Worker.run_job`: the job, its try
# count incremented, and its abort request removed), which would otherwise cost the
# job a round trip of its own before it starts. Returns, per job, its id, score and
# those four answers, then the queue's length (a burst worker stops at zero).
#
# An armed claim (`WakeUpWorker._armed_round`) names a second key, its worker's stop
# mark, and no clock: it runs the moment the worker's BLPOP before it returns, so it
# reads Redis's clock then, and it takes nothing when the stop mark is set.
CLAIM_SCRIPT = """
local queue, now, slots, prefix = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ttl, offset, scan = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local job_prefix, retry_prefix, abort_set = ARGV[7], ARGV[8], ARGV[9]
local taken = {}
if KEYS[2] then
  if redis.call('DEL', KEYS[2]) == 1 then return {taken, redis.call('ZCARD', queue)} end
  local clock = redis.call('TIME')
  now = clock[1] .. string.format('%03d', math.floor(tonumber(clock[2]) / 1000))
end
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
CLAIM_SHA = hashlib.sha1(CLAIM_SCRIPT.encode()).hexdigest()
CLAIMED_FIELDS = 6

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


def with_claimed_read(job_id: str, answers: list[Any], abort: bool) -> contextvars.Context:
    """A context for the job's task in which its first pipeline is its claimed read."""
    context = contextvars.copy_context()
    context.run(_claimed_read.set, ClaimedRead(job_id, answers, abort))
    return context


def answering_claimed_reads(pipeline: Callable[..., Any]) -> Callable[..., Any]:
    """The pool's `pipeline`, except that a job's first one in `run_job` is its claimed read."""

    def claimed_or_real(*args: Any, **kwargs: Any) -> Any:
        read = _claimed_read.get()
        if read is None:
            return pipeline(*args, **kwargs)
        _claimed_read.set(None)  # only the first pipeline of the job's task
        return read

    return claimed_or_real
