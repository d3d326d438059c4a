"""Only admins see into the queue: anonymous 401, ordinary users 403, admins 200."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.jobs.models import JobRun, JobStatus
from tests.visibility.conftest import People, add_runs, ledger_row

ROUTES = [
    ("GET", "/admin/jobs"),
    ("GET", "/admin/jobs/job-1"),
    ("POST", "/admin/jobs/job-1/requeue"),
    ("POST", "/admin/jobs/job-1/cancel"),
    ("POST", "/admin/jobs/requeue-failed"),
    ("GET", "/api/admin/jobs"),
    ("GET", "/api/admin/jobs/stats"),
    ("GET", "/api/admin/jobs/job-1"),
    ("POST", "/api/admin/jobs/job-1/requeue"),
    ("POST", "/api/admin/jobs/job-1/cancel"),
    ("POST", "/api/admin/jobs/requeue-failed"),
    ("GET", "/api/admin/workers"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_admin_routes_refuse_anonymous_and_ordinary_users(
    client: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    people: People,
    method: str,
    path: str,
) -> None:
    await add_runs(db, ledger_row("job-1", JobStatus.SUCCEEDED))

    anonymous = await client.request(method, path)
    ordinary = await client.request(method, path, headers=people.user)

    assert anonymous.status_code == 401
    assert ordinary.status_code == 403
    async with db() as session:
        run = await session.get(JobRun, "job-1")
        assert run is not None and run.status == JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    "path",
    [
        "/admin/jobs",
        "/admin/jobs/job-1",
        "/api/admin/jobs",
        "/api/admin/jobs/stats",
        "/api/admin/jobs/job-1",
        "/api/admin/workers",
    ],
)
async def test_admins_can_read_every_view(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], people: People, path: str
) -> None:
    await add_runs(db, ledger_row("job-1", JobStatus.SUCCEEDED))

    response = await client.get(path, headers=people.admin)

    assert response.status_code == 200
