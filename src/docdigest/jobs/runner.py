"""The wrapper around every job attempt: ledger, logs, metrics, timeout, retry policy.

The job function only does its work; this module owns its session and commit,
turns transient errors into Arq retries with backoff, and records the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from arq import Retry

from docdigest.core.db import commit, rollback, utcnow
from docdigest.jobs import metrics
from docdigest.jobs.context import JobContext, current_job_id, request_id
from docdigest.jobs.ledger import Ledger
from docdigest.jobs.ledger_batch import Ended, Started
from docdigest.jobs.models import AttemptOutcome, JobStatus
from docdigest.jobs.redact import redact
from docdigest.jobs.retry import RetryPolicy, will_retry
from docdigest.settings import Settings

if TYPE_CHECKING:
    from docdigest.jobs.registry import JobSpec

log = logging.getLogger("docdigest.jobs")


async def run_job(
    spec: JobSpec, ctx: dict[str, Any], kwargs: dict[str, Any], meta: dict[str, Any] | None
) -> None:
    settings: Settings = ctx["settings"]
    ledger: Ledger = ctx["ledger"]
    job_id: str = ctx["job_id"]
    attempt: int = ctx["job_try"]
    policy = spec.policy(settings)

    if meta is not None:
        # Pushed from a ledger row: the push carried what the row says, so the job
        # starts now and its start is written with the next batch.
        announced = Started(
            meta["request_id"], meta["parent_id"], meta["subject"], meta["series"], utcnow()
        )
        ledger.record_start(job_id, announced)
        started: Started | None = announced
    else:
        started = await _start_unannounced(spec, ledger, job_id, attempt, policy, kwargs)
    if started is None:
        log.info("job already finished, skipping", extra={"job": spec.name, "job_id": job_id})
        return
    request_token = request_id.set(started.request_id)
    job_token = current_job_id.set(job_id)
    fields: dict[str, Any] = {
        "job": spec.name,
        "job_id": job_id,
        "attempt": attempt,
        "subject": started.subject,
    }
    log.info("job start", extra=fields | {"job_args": redact(kwargs)})
    metrics.observe_start(spec.name, time.time() - ctx.get("score", 0) / 1000)
    clock = time.perf_counter()
    attempt_run = _Attempt(spec, ledger, job_id, attempt, policy, started, fields, clock)
    jc = JobContext(
        settings=settings,
        job_id=job_id,
        attempt=attempt,
        max_tries=policy.max_tries,
        sessionmaker=ctx["sessionmaker"],
        resources=ctx.get("resources", {}),
        series=started.series,
    )
    try:
        await _run_body(spec, ctx, jc, kwargs, attempt_run)
    finally:
        if jc.opened is not None:
            await jc.opened.close()
        current_job_id.reset(job_token)
        request_id.reset(request_token)


async def _run_body(
    spec: JobSpec,
    ctx: dict[str, Any],
    jc: JobContext,
    kwargs: dict[str, Any],
    record: _Attempt,
) -> None:
    try:
        async with asyncio.timeout(spec.timeout_s):
            await spec.fn(jc, **kwargs)
        if jc.opened is not None:
            await commit(jc.opened)
    except asyncio.CancelledError:
        if jc.opened is not None:
            await asyncio.shield(rollback(jc.opened))
        await asyncio.shield(record.cancelled(_aborted(ctx, record.job_id)))
        raise
    except Exception as exc:
        if jc.opened is not None:
            await rollback(jc.opened)
        await record.failed(exc)
    else:
        await record.succeeded()


async def _start_unannounced(
    spec: JobSpec,
    ledger: Ledger,
    job_id: str,
    attempt: int,
    policy: RetryPolicy,
    kwargs: dict[str, Any],
) -> Started | None:
    """A job pushed without the ledger's note (a cron job, an old push): ask the ledger."""
    try:
        return await ledger.start(
            job_id,
            spec.name,
            kwargs,
            {"max_tries": policy.max_tries, "subject": spec.subject_for(kwargs)},
        )
    except Exception as exc:
        # The database is away: nothing ran, so try again later rather than fail.
        log.warning("ledger unavailable, retrying", extra={"job": spec.name, "job_id": job_id})
        raise Retry(defer=policy.delay_s(attempt)) from exc


def _aborted(ctx: dict[str, Any], job_id: str) -> bool:
    """An operator's abort, as opposed to the worker shutting down (which Arq retries)."""
    worker = ctx.get("worker")
    return worker is not None and job_id in worker.aborting_tasks


class _Attempt:
    """Records how one attempt ended, in the ledger, the log and the metrics."""

    def __init__(
        self,
        spec: JobSpec,
        ledger: Ledger,
        job_id: str,
        attempt: int,
        policy: RetryPolicy,
        started: Started,
        fields: dict[str, Any],
        clock: float,
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.job_id = job_id
        self.attempt = attempt
        self.policy = policy
        self.started = started
        self.fields = fields
        self.clock = clock

    def _ended(self, outcome: AttemptOutcome, status: JobStatus, **extra: Any) -> Ended:
        return Ended(
            job_id=self.job_id,
            series=self.started.series,
            attempt=self.attempt,
            started_at=self.started.started_at,
            finished_at=utcnow(),
            outcome=outcome,
            status=status,
            **extra,
        )

    def _elapsed(self) -> float:
        return time.perf_counter() - self.clock

    async def succeeded(self) -> None:
        elapsed = self._elapsed()
        self.ledger.end(self._ended(AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED))
        metrics.observe_end(self.spec.name, "succeeded", elapsed)
        log.info("job done", extra=self.fields | {"elapsed_ms": _ms(elapsed)})

    async def cancelled(self, aborted: bool) -> None:
        elapsed = self._elapsed()
        if aborted:
            outcome, status, message = (
                AttemptOutcome.CANCELLED,
                JobStatus.CANCELLED,
                "cancelled by an operator",
            )
        else:
            # The worker is stopping; Arq puts the job back on the queue.
            outcome, status, message = (
                AttemptOutcome.INTERRUPTED,
                JobStatus.QUEUED,
                "worker stopped during the attempt",
            )
        self.ledger.end(self._ended(outcome, status, error_type="Cancelled", error_message=message))
        metrics.observe_end(self.spec.name, "cancelled", elapsed)
        log.warning(
            "job cancelled" if aborted else "job interrupted",
            extra=self.fields | {"elapsed_ms": _ms(elapsed)},
        )

    async def failed(self, exc: Exception) -> None:
        elapsed = self._elapsed()
        error = {
            "error_type": type(exc).__name__,
            "error_message": str(exc)[:2000] or type(exc).__name__,
            "error_traceback": "".join(traceback.format_exception(exc, limit=8))[-8000:],
        }
        fields = self.fields | {"elapsed_ms": _ms(elapsed), "error": error["error_message"]}
        if will_retry(exc, self.attempt, self.policy.max_tries):
            delay = self.policy.delay_s(self.attempt)
            ended = self._ended(
                AttemptOutcome.RETRIED,
                JobStatus.RETRYING,
                retry_at=utcnow() + timedelta(seconds=delay),
                retry_delay_s=delay,
                **error,
            )
            self.ledger.end(ended)
            metrics.observe_end(self.spec.name, "retried", elapsed)
            log.warning("job retry", extra=fields | {"retry_in_s": round(delay, 3)})
            raise Retry(defer=delay) from exc
        self.ledger.end(self._ended(AttemptOutcome.FAILED, JobStatus.FAILED, **error))
        metrics.observe_end(self.spec.name, "failed", elapsed)
        log.error("job failed", extra=fields)
        raise exc


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
