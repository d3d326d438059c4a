"""The list filter as the page's form and the API's query string give it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from docdigest.core.errors import Unprocessable
from docdigest.jobs.dashboard.queries import JobFilter
from docdigest.jobs.models import JobStatus


def _time(value: str | None, name: str) -> datetime | None:
    """Times without an offset are UTC (the page says so); others keep theirs."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Unprocessable(f"{name}: not a date and time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def filter_params(
    status: str | None = None,
    function: str | None = None,
    subject: Annotated[str | None, Query(description="e.g. document:42")] = None,
    since: Annotated[str | None, Query(description="enqueued at or after (ISO 8601)")] = None,
    until: Annotated[str | None, Query(description="enqueued before (ISO 8601)")] = None,
    q: Annotated[str | None, Query(description="a job id or a request id")] = None,
) -> JobFilter:
    """The filter as the page's form and the API's query string give it; empty means any."""
    if status and status not in {s.value for s in JobStatus}:
        raise Unprocessable(f"status: one of {', '.join(JobStatus)}")
    return JobFilter(
        JobStatus(status) if status else None,
        function or None,
        (subject or "").strip() or None,
        _time(since, "since"),
        _time(until, "until"),
        (q or "").strip() or None,
    )
