"""A job's end (Arq's `finish_job`: its result stored, its keys removed, its queue
entry gone), as commands a worker queues with those of its other jobs that end
meanwhile, in one MULTI/EXEC: under load, one round trip for many jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.utils import to_ms
from redis.asyncio.client import Pipeline


@dataclass(frozen=True)
class Finish:
    """Arq's `finish_job` arguments for one job."""

    job_id: str
    finish: bool
    result_data: bytes | None
    result_timeout_s: float | None
    keep_result_forever: bool
    incr_score: int | None
    keep_in_progress: float | None


def queue_finish(tr: Pipeline, queue_name: str, end: Finish) -> None:
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
