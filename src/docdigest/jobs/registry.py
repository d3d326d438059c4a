"""Declaring jobs: `@job(...)` wraps a plain async function with the tier's policy
(timeout, tries, backoff); jobs/runner.py runs each attempt under it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from arq.worker import Function, func

from docdigest.jobs.context import JobContext
from docdigest.jobs.enqueue import LEDGER_META
from docdigest.jobs.retry import RetryPolicy
from docdigest.jobs.runner import run_job
from docdigest.settings import Settings

P = ParamSpec("P")
JobFunction = Callable[Concatenate[JobContext, P], Awaitable[None]]

#: Time Arq allows beyond a job's own timeout, for the wrapper to record the outcome.
TIMEOUT_GRACE_S = 1.0


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: Callable[..., Awaitable[None]]
    timeout_s: float
    max_tries: int | None
    retry_base_s: float | None
    retry_cap_s: float | None
    subject: str | None

    def policy(self, settings: Settings) -> RetryPolicy:
        return RetryPolicy(
            max_tries=self.max_tries or settings.job_max_tries,
            base_s=self.retry_base_s
            if self.retry_base_s is not None
            else settings.job_retry_base_s,
            cap_s=self.retry_cap_s if self.retry_cap_s is not None else settings.job_retry_cap_s,
        )

    def subject_for(self, kwargs: dict[str, Any]) -> str | None:
        return self.subject.format(**kwargs) if self.subject else None

    def arq_function(self, settings: Settings) -> Function:
        async def run(ctx: dict[str, Any], **kwargs: Any) -> None:
            meta = kwargs.pop(LEDGER_META, None)
            await run_job(self, ctx, kwargs, meta)

        return func(
            run,
            name=self.name,
            # The wrapper enforces timeout_s itself (a timeout is then a transient
            # error, retried); Arq's own limit only backs it up.
            timeout=self.timeout_s + TIMEOUT_GRACE_S,
            max_tries=self.policy(settings).max_tries,
        )


def job(
    *,
    timeout_s: float = 60,
    max_tries: int | None = None,
    retry_base_s: float | None = None,
    retry_cap_s: float | None = None,
    subject: str | None = None,
) -> Callable[[JobFunction[P]], JobSpec]:
    """Declare a job; `subject` formats its arguments, e.g. "document:{document_id}"."""

    def declare(fn: JobFunction[P]) -> JobSpec:
        return JobSpec(
            name=fn.__name__,
            fn=fn,
            timeout_s=timeout_s,
            max_tries=max_tries,
            retry_base_s=retry_base_s,
            retry_cap_s=retry_cap_s,
            subject=subject,
        )

    return declare
