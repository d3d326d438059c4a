"""An operator requeues a dead letter and cancels waiting work, from the API, the page and
the CLI; each action shows in the ledger and in Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.core.queue import connect_queue
from docdigest.jobs import enqueue
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker, run_command
from tests.visibility import jobs
from tests.visibility.conftest import People


async def _failed_job(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker, n: int
) -> str:
    jobs.refused.add(n)
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, jobs.number_job, n=n)
        await commit(session)
    await run_worker(functions=jobs.functions(settings), cron_jobs=[])
    await queue.aclose()
    jobs.refused.discard(n)
    return run.id


async def _deferred_job(settings: Settings, db: async_sessionmaker[AsyncSession]) -> str:
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, jobs.number_job, defer_by=timedelta(hours=1), n=5)
        await commit(session)
    await queue.aclose()
    return run.id


async def _status(db: async_sessionmaker[AsyncSession], job_id: str) -> JobStatus:
    async with db() as session:
        run = await session.get(JobRun, job_id)
        assert run is not None
        return run.status


async def _queued_in_redis(settings: Settings, job_id: str) -> bool:
    queue: ArqRedis = await connect_queue(settings)
    score = await queue.zscore(settings.queue_name, job_id)
    await queue.aclose()
    return score is not None


async def test_requeue_through_the_api_runs_the_dead_letter_again(
    client: httpx.AsyncClient,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    run_worker: RunWorker,
    people: People,
) -> None:
    job_id = await _failed_job(settings, db, run_worker, 41)
    assert await _status(db, job_id) == JobStatus.FAILED
    listed = await client.get("/api/admin/jobs?status=failed", headers=people.admin)
    assert [j["id"] for j in listed.json()["jobs"]] == [job_id]

    response = await client.post(f"/api/admin/jobs/{job_id}/requeue", headers=people.admin)

    assert response.status_code == 200
    assert response.json()["job"]["status"] == "queued"
    assert await _status(db, job_id) == JobStatus.QUEUED
    assert await _queued_in_redis(settings, job_id)
    await run_worker(functions=jobs.functions(settings), cron_jobs=[])
    assert await _status(db, job_id) == JobStatus.SUCCEEDED
    detail = (await client.get(f"/api/admin/jobs/{job_id}", headers=people.admin)).json()
    outcomes = [(a["series"], a["outcome"]) for a in detail["attempt_history"]]
    assert outcomes == [(1, "failed"), (2, "succeeded")]
    assert detail["attempt_history"][0]["error_message"] == "number 41 refused"


async def test_requeueing_a_job_that_did_not_fail_is_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    people: People,
) -> None:
    job_id = await _deferred_job(settings, db)

    response = await client.post(f"/api/admin/jobs/{job_id}/requeue", headers=people.admin)

    assert response.status_code == 409
    assert await _status(db, job_id) == JobStatus.DEFERRED
    assert await _queued_in_redis(settings, job_id)


async def test_cancel_through_the_api_takes_the_job_off_the_queue(
    client: httpx.AsyncClient,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    people: People,
) -> None:
    job_id = await _deferred_job(settings, db)
    assert await _queued_in_redis(settings, job_id)

    response = await client.post(f"/api/admin/jobs/{job_id}/cancel", headers=people.admin)

    assert response.status_code == 200
    assert await _status(db, job_id) == JobStatus.CANCELLED
    assert not await _queued_in_redis(settings, job_id)
    again = await client.post(f"/api/admin/jobs/{job_id}/cancel", headers=people.admin)
    assert again.status_code == 409


async def test_requeue_all_failed_through_the_api(
    client: httpx.AsyncClient,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    run_worker: RunWorker,
    people: People,
) -> None:
    first = await _failed_job(settings, db, run_worker, 1)
    second = await _failed_job(settings, db, run_worker, 2)

    response = await client.post("/api/admin/jobs/requeue-failed", headers=people.admin)

    assert response.json()["count"] == 2
    for job_id in (first, second):
        assert await _status(db, job_id) == JobStatus.QUEUED
        assert await _queued_in_redis(settings, job_id)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def test_requeue_and_cancel_from_the_job_page(
    client: httpx.AsyncClient,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    run_worker: RunWorker,
    people: People,
) -> None:
    failed = await _failed_job(settings, db, run_worker, 7)
    deferred = await _deferred_job(settings, db)
    client.cookies.set("docdigest_session", people.admin["Authorization"][7:])

    page = await client.get(f"/admin/jobs/{failed}")
    assert "number 7 refused" in page.text and "Requeue" in page.text
    assert 'hx-select="#job-live"' not in page.text  # a failed job no longer changes
    forged = await client.post(f"/admin/jobs/{failed}/requeue", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert await _status(db, failed) == JobStatus.FAILED

    done = await client.post(
        f"/admin/jobs/{failed}/requeue",
        data={"csrf_token": _csrf(page.text)},
        follow_redirects=True,
    )
    assert "queued again" in done.text
    assert await _status(db, failed) == JobStatus.QUEUED
    assert await _queued_in_redis(settings, failed)

    page = await client.get(f"/admin/jobs/{deferred}")
    assert 'hx-select="#job-live"' in page.text  # a waiting job's page follows it live
    cancelled = await client.post(
        f"/admin/jobs/{deferred}/cancel",
        data={"csrf_token": _csrf(page.text)},
        follow_redirects=True,
    )
    assert "The job was cancelled." in cancelled.text
    assert await _status(db, deferred) == JobStatus.CANCELLED
    assert not await _queued_in_redis(settings, deferred)

    # Cancelling again (a second tab, say) explains why nothing happened.
    again = await client.post(
        f"/admin/jobs/{deferred}/cancel", data={"csrf_token": _csrf(page.text)}
    )
    assert again.status_code == 409
    assert "can no longer be cancelled" in again.text


async def test_requeue_and_cancel_from_the_command_line(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker
) -> None:
    failed = await _failed_job(settings, db, run_worker, 9)
    deferred = await _deferred_job(settings, db)
    env = {
        "DOCDIGEST_DATABASE_URL": settings.database_url,
        "DOCDIGEST_REDIS_URL": settings.redis_url,
        "DOCDIGEST_QUEUE_NAME": settings.queue_name,
        "COLUMNS": "200",
    }
    cli = (sys.executable, "-m", "docdigest", "jobs")

    listing = run_command(*cli, "list", "--status", "failed", env=env)
    assert failed in listing and deferred not in listing
    assert "number 9 refused" in run_command(*cli, "show", failed, env=env)

    assert f"job {failed} requeued" in run_command(*cli, "requeue", failed, env=env)
    assert f"job {deferred} cancelled" in run_command(*cli, "cancel", deferred, env=env)

    assert await _status(db, failed) == JobStatus.QUEUED
    assert await _queued_in_redis(settings, failed)
    assert await _status(db, deferred) == JobStatus.CANCELLED
    assert not await _queued_in_redis(settings, deferred)
    stats = run_command(*cli, "stats", env=env)
    assert "number_job" in stats
    no_worker = subprocess.run(
        [*cli, "workers", "--check"], capture_output=True, text=True, env=os.environ | env
    )
    assert no_worker.returncode == 1 and "no worker is running" in no_worker.stdout
