"""The admin pages: `/admin/jobs` (counts, list, workers; live via HTMX) and a job's page."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from docdigest.core.db import SessionDep
from docdigest.core.errors import AppError
from docdigest.jobs import control
from docdigest.jobs.dashboard.params import filter_params
from docdigest.jobs.dashboard.queries import (
    JobFilter,
    function_names,
    job_detail,
    job_stats,
    list_jobs,
)
from docdigest.jobs.dashboard.workers import list_workers
from docdigest.jobs.models import JobStatus
from docdigest.users.auth import admin_user
from docdigest.web.templating import templates

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(admin_user)])

NOTICES = {
    "requeued": "The job is queued again and will run as a new series of tries.",
    "cancelled": "The job was cancelled.",
    "requeued_failed": "Failed jobs requeued: {count}.",
}


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    session: SessionDep,
    filters: Annotated[JobFilter, Depends(filter_params)],
    cursor: str | None = None,
    notice: str | None = None,
    count: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    settings = request.app.state.settings
    page = await list_jobs(session, filters, cursor=cursor)
    params = {
        k: v for k, v in request.query_params.items() if k not in ("cursor", "notice", "count")
    }
    return templates.TemplateResponse(
        request,
        "admin/jobs.html",
        {
            "filters": filters,
            "page": page,
            "stats": await job_stats(session, filters),
            "functions": await function_names(session),
            "statuses": list(JobStatus),
            "workers": await list_workers(request.app.state.arq, settings),
            "next_url": f"/admin/jobs?{urlencode(params | {'cursor': page.next_cursor})}"
            if page.next_cursor
            else None,
            "first_url": f"/admin/jobs?{urlencode(params)}" if cursor else None,
            "notice": NOTICES.get(notice or "", "").format(count=count),
            "raw": {k: request.query_params.get(k, "") for k in ("since", "until")},
        },
    )


async def _job_context(session: SessionDep, job_id: str) -> dict[str, Any]:
    detail = await job_detail(session, job_id)
    return {
        "detail": detail,
        "run": detail.run,
        "can_requeue": detail.run.status in control.REQUEUEABLE,
        "can_cancel": detail.run.status in control.CANCELLABLE,
    }


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(
    request: Request, session: SessionDep, job_id: str, notice: str | None = None
) -> HTMLResponse:
    context = await _job_context(session, job_id) | {"notice": NOTICES.get(notice or "", "")}
    return templates.TemplateResponse(request, "admin/job.html", context)


@router.post("/jobs/requeue-failed")
async def requeue_failed_form(
    session: SessionDep, function: Annotated[str, Form()] = ""
) -> RedirectResponse:
    count = await control.requeue_failed(session, function or None)
    return RedirectResponse(
        f"/admin/jobs?{urlencode({'notice': 'requeued_failed', 'count': count})}", 303
    )


@router.post("/jobs/{job_id}/requeue", response_model=None)
async def requeue_form(
    request: Request, session: SessionDep, job_id: str
) -> RedirectResponse | HTMLResponse:
    try:
        await control.requeue(session, job_id)
    except AppError as exc:
        return await _action_failed(request, session, job_id, exc)
    return RedirectResponse(f"/admin/jobs/{job_id}?notice=requeued", 303)


@router.post("/jobs/{job_id}/cancel", response_model=None)
async def cancel_form(
    request: Request, session: SessionDep, job_id: str
) -> RedirectResponse | HTMLResponse:
    try:
        await control.cancel(session, request.app.state.arq, job_id)
    except AppError as exc:
        return await _action_failed(request, session, job_id, exc)
    return RedirectResponse(f"/admin/jobs/{job_id}?notice=cancelled", 303)


async def _action_failed(
    request: Request, session: SessionDep, job_id: str, exc: AppError
) -> HTMLResponse:
    """Show the job again with the reason, e.g. a cancel that lost the race to completion."""
    context = await _job_context(session, job_id) | {"error": exc.message}
    return templates.TemplateResponse(
        request, "admin/job.html", context, status_code=exc.status_code
    )
