"""The job ledger: one row per job, the system of record for work (Redis is only transport)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from docdigest.core.db import Base, UTCDateTime, utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


PENDING_STATUSES = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.RETRYING)
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    #: The worker stopped without finishing the attempt; Arq runs it again.
    INTERRUPTED = "interrupted"


class JobRun(Base):
    """A job and the summary of its latest attempt; `job_attempts` holds every attempt."""

    __tablename__ = "job_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(String(16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_tries: Mapped[int] = mapped_column(Integer)
    #: Bumped by each requeue: attempts of one series are numbered from 1 again.
    series: Mapped[int] = mapped_column(Integer, default=1)
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    subject: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(String(64))

    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_job_runs_status_enqueued", "status", "enqueued_at"),
        Index("ix_job_runs_function_status", "function", "status", "enqueued_at"),
        # The dashboard's "one function, newest first" page.
        Index("ix_job_runs_function_enqueued", "function", "enqueued_at"),
        Index("ix_job_runs_subject", "subject", "enqueued_at"),
        Index("ix_job_runs_request_id", "request_id"),
        Index("ix_job_runs_parent_id", "parent_id"),
        Index("ix_job_runs_enqueued", "enqueued_at"),
    )


class JobAttempt(Base):
    """One try of a job: when it ran, how it ended, and the error if any."""

    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64))
    series: Mapped[int] = mapped_column(Integer, default=1)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[AttemptOutcome] = mapped_column(String(16))
    #: For a retried attempt: how long the backoff chose to wait before the next one.
    retry_delay_s: Mapped[float | None] = mapped_column(Float)
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_job_attempts_job", "job_id", "series", "attempt"),
        Index("ix_job_attempts_outcome_finished", "outcome", "finished_at"),
    )
