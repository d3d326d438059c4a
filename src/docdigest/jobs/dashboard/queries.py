"""The ledger queries behind the dashboard, the admin API and `docdigest jobs`.

Lists use keyset pagination on (enqueued_at, id), newest first, so any page costs
one index range scan however deep it is; OFFSET would read every skipped row.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal, or_, select, text, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import utcnow
from docdigest.core.errors import NotFound, Unprocessable
from docdigest.jobs.models import JobAttempt, JobRun, JobStatus
from docdigest.jobs.redact import redact

MAX_LIMIT = 200
COUNT_CAP = 10_000
FUNCTION_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class JobFilter:
    status: JobStatus | None = None
    function: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: A job id or a request id.
    search: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.status is not None:
            where.append(JobRun.status == self.status)
        if self.function:
            where.append(JobRun.function == self.function)
        if self.subject:
            where.append(JobRun.subject == self.subject)
        if self.since is not None:
            where.append(JobRun.enqueued_at >= self.since)
        if self.until is not None:
            where.append(JobRun.enqueued_at < self.until)
        if self.search:
            term = self.search.strip()
            where.append(or_(JobRun.id == term, JobRun.request_id == term))
        return where


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRun]
    next_cursor: str | None


@dataclass(frozen=True)
class JobDetail:
    run: JobRun
    args: dict[str, Any]
    attempts: list[JobAttempt]
    parent: JobRun | None
    children: list[JobRun]


@dataclass(frozen=True)
class Stats:
    by_status: dict[str, int]
    by_function: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Statuses whose count reached COUNT_CAP: "at least that many".
    capped: list[str] = field(default_factory=list)
    #: The start of the window `by_function` covers.
    functions_since: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def encode_cursor(run: JobRun) -> str:
    raw = f"{run.enqueued_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        at = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise Unprocessable("invalid cursor: use the next_cursor of a previous page") from exc
    if at.tzinfo is None:
        raise Unprocessable("invalid cursor: use the next_cursor of a previous page")
    return at, job_id


async def list_jobs(
    session: AsyncSession, filters: JobFilter, *, limit: int = 50, cursor: str | None = None
) -> JobPage:
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(JobRun).where(*filters.conditions())
    if cursor:
        at, job_id = decode_cursor(cursor)
        query = query.where(tuple_(JobRun.enqueued_at, JobRun.id) < tuple_(at, job_id))
    query = query.order_by(JobRun.enqueued_at.desc(), JobRun.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(rows, encode_cursor(rows[-1]) if more and rows else None)


async def job_stats(session: AsyncSession, filters: JobFilter | None = None) -> Stats:
    """Counts by status, and by function and status.

    Both stay cheap however long the ledger grows: a status count stops at
    COUNT_CAP (shown as "10000+"), and the per-function table covers a window,
    the last day unless the filter gives one.
    """
    filters = filters or JobFilter()
    where = filters.conditions()
    capped = union_all(
        *(
            select(literal(status.value), func.count()).select_from(
                select(literal(1))
                .select_from(JobRun)
                .where(JobRun.status == status, *where)
                .limit(COUNT_CAP + 1)
                .subquery()
            )
            for status in JobStatus
        )
    )
    by_status = {status: min(count, COUNT_CAP) for status, count in await session.execute(capped)}
    at_cap = [status for status, count in by_status.items() if count >= COUNT_CAP]

    since = filters.since or utcnow() - FUNCTION_WINDOW
    window = replace(filters, since=since).conditions()
    grouped = (
        select(JobRun.function, JobRun.status, func.count())
        .where(*window)
        .group_by(JobRun.function, JobRun.status)
    )
    by_function: dict[str, dict[str, int]] = {}
    for function, status, count in await session.execute(grouped):
        by_function.setdefault(function, {})[status] = count
    return Stats(by_status, dict(sorted(by_function.items())), at_cap, since)


async def job_detail(session: AsyncSession, job_id: str) -> JobDetail:
    run = await session.get(JobRun, job_id)
    if run is None:
        raise NotFound(f"no job {job_id}")
    attempts = await session.scalars(
        select(JobAttempt)
        .where(JobAttempt.job_id == job_id)
        .order_by(JobAttempt.series, JobAttempt.attempt, JobAttempt.id)
    )
    parent = await session.get(JobRun, run.parent_id) if run.parent_id else None
    children = await session.scalars(
        select(JobRun)
        .where(JobRun.parent_id == job_id)
        .order_by(JobRun.enqueued_at, JobRun.id)
        .limit(MAX_LIMIT)
    )
    return JobDetail(run, redact(run.args), list(attempts), parent, list(children))


# SELECT DISTINCT would read the whole index; this hops from one name to the next
# (a "loose index scan"), one index seek per function, on SQLite and PostgreSQL alike.
_FUNCTION_NAMES = text(
    """
    WITH RECURSIVE names(name) AS (
        SELECT min(function) FROM job_runs
        UNION ALL
        SELECT (SELECT min(function) FROM job_runs WHERE function > names.name)
        FROM names WHERE names.name IS NOT NULL
    )
    SELECT name FROM names WHERE name IS NOT NULL
    """
)


async def function_names(session: AsyncSession) -> list[str]:
    return list(await session.scalars(_FUNCTION_NAMES))
