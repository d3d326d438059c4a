"""The admin API's JSON shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from docdigest.jobs.dashboard.queries import JobDetail, JobPage, Stats
from docdigest.jobs.dashboard.workers import WorkerInfo
from docdigest.jobs.models import JobRun


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    function: str
    status: str
    attempts: int
    max_tries: int
    subject: str | None
    request_id: str | None
    parent_id: str | None
    enqueued_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error_type: str | None
    error_message: str | None

    @classmethod
    def of(cls, run: JobRun) -> JobOut:
        return cls.model_validate(run)


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: JobPage) -> JobListOut:
        return cls(jobs=[JobOut.of(r) for r in page.jobs], next_cursor=page.next_cursor)


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    series: int
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    retry_delay_s: float | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None


class JobDetailOut(JobOut):
    args: dict[str, Any]
    series: int
    error_traceback: str | None
    attempt_history: list[AttemptOut]
    parent: JobOut | None
    children: list[JobOut]

    @classmethod
    def of_detail(cls, detail: JobDetail) -> JobDetailOut:
        base = JobOut.of(detail.run).model_dump()
        return cls(
            **base,
            args=detail.args,
            series=detail.run.series,
            error_traceback=detail.run.error_traceback,
            attempt_history=[AttemptOut.model_validate(a) for a in detail.attempts],
            parent=JobOut.of(detail.parent) if detail.parent else None,
            children=[JobOut.of(c) for c in detail.children],
        )


class StatsOut(BaseModel):
    total: int
    by_status: dict[str, int]
    #: Statuses whose count stopped at the cap: there are at least that many.
    capped: list[str]
    by_function: dict[str, dict[str, int]]
    #: `by_function` counts jobs enqueued since then.
    functions_since: datetime | None

    @classmethod
    def of(cls, stats: Stats) -> StatsOut:
        return cls(
            total=stats.total,
            by_status=stats.by_status,
            capped=stats.capped,
            by_function=stats.by_function,
            functions_since=stats.functions_since,
        )


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    alive: bool
    stale: bool
    heartbeat_age_s: float | None
    last_seen: datetime | None
    started_at: datetime | None
    metrics_port: int | None
    jobs_complete: int
    jobs_failed: int
    jobs_retried: int
    jobs_ongoing: int
    queued: int

    @classmethod
    def of(cls, worker: WorkerInfo) -> WorkerOut:
        return cls.model_validate(worker)


class ActionOut(BaseModel):
    message: str
    job: JobOut | None = None
    count: int | None = None
