"""The admin JSON API over the job ledger: `/api/admin/jobs…` and `/api/admin/workers`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from docdigest.core.db import SessionDep
from docdigest.jobs import control
from docdigest.jobs.dashboard.params import filter_params
from docdigest.jobs.dashboard.queries import (
    JobFilter,
    job_detail,
    job_stats,
    list_jobs,
)
from docdigest.jobs.dashboard.schemas import (
    ActionOut,
    JobDetailOut,
    JobListOut,
    JobOut,
    StatsOut,
    WorkerOut,
)
from docdigest.jobs.dashboard.workers import list_workers
from docdigest.users.auth import admin_user

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(admin_user)])


FilterDep = Annotated[JobFilter, Depends(filter_params)]


@router.get("/jobs")
async def jobs(
    session: SessionDep,
    filters: FilterDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobListOut:
    return JobListOut.of(await list_jobs(session, filters, limit=limit, cursor=cursor))


@router.get("/jobs/stats")
async def stats(session: SessionDep, filters: FilterDep) -> StatsOut:
    return StatsOut.of(await job_stats(session, filters))


@router.post("/jobs/requeue-failed")
async def requeue_failed(session: SessionDep, function: str | None = None) -> ActionOut:
    count = await control.requeue_failed(session, function)
    return ActionOut(message=f"requeued {count} failed job(s)", count=count)


@router.get("/jobs/{job_id}")
async def job(session: SessionDep, job_id: str) -> JobDetailOut:
    return JobDetailOut.of_detail(await job_detail(session, job_id))


@router.post("/jobs/{job_id}/requeue")
async def requeue(session: SessionDep, job_id: str) -> ActionOut:
    run = await control.requeue(session, job_id)
    return ActionOut(message=f"job {job_id} requeued", job=JobOut.of(run))


@router.post("/jobs/{job_id}/cancel")
async def cancel(session: SessionDep, request: Request, job_id: str) -> ActionOut:
    run = await control.cancel(session, request.app.state.arq, job_id)
    return ActionOut(message=f"job {job_id} cancelled", job=JobOut.of(run))


@router.get("/workers")
async def workers(request: Request) -> list[WorkerOut]:
    found = await list_workers(request.app.state.arq, request.app.state.settings)
    return [WorkerOut.of(w) for w in found]
