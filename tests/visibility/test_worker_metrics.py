"""After real jobs run, the worker's metrics endpoint counts them, times them and gauges the
queue and the dead letters."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.core.queue import connect_queue
from docdigest.devserver.redis import free_port
from docdigest.jobs import enqueue
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import Settings
from docdigest.worker import create_worker
from tests.visibility import jobs
from tests.visibility.conftest import People


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _before(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_worker_metrics_count_real_jobs(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    people: People,
) -> None:
    succeeded = _before("docdigest_jobs_total", function="number_job", outcome="succeeded")
    failed = _before("docdigest_jobs_total", function="number_job", outcome="failed")
    timed = _before("docdigest_job_duration_seconds_count", function="number_job")
    waited = _before("docdigest_job_queue_wait_seconds_count", function="number_job")
    jobs.refused.add(303)
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        ids = [(await enqueue(session, jobs.number_job, n=n)).id for n in (301, 302, 303)]
        await commit(session)

    port = free_port()
    worker = create_worker(
        settings.model_copy(update={"worker_metrics_port": port}),
        functions=jobs.functions(settings),
        cron_jobs=[],
        handle_signals=False,
        poll_delay=0.02,
    )
    running = asyncio.create_task(worker.main())
    try:
        for _ in range(500):
            async with db() as session:
                runs = [await session.get(JobRun, i) for i in ids]
            if all(
                r is not None and r.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) for r in runs
            ):
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            elsewhere = await http.get(f"http://127.0.0.1:{port}/admin")
        listed = (await client.get("/api/admin/workers", headers=people.admin)).json()
    finally:
        await worker.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.aclose()
        jobs.refused.discard(303)

    assert elsewhere.status_code == 404
    [worker_seen] = listed
    assert worker_seen["alive"] and worker_seen["metrics_port"] == port
    values = _samples(scraped)

    def value(name: str, **labels: str) -> float:
        return values[(name, frozenset(labels.items()))]

    assert (
        value("docdigest_jobs_total", function="number_job", outcome="succeeded") == succeeded + 2
    )
    assert value("docdigest_jobs_total", function="number_job", outcome="failed") == failed + 1
    assert value("docdigest_job_duration_seconds_count", function="number_job") == timed + 3
    assert value("docdigest_job_queue_wait_seconds_count", function="number_job") == waited + 3
    assert value("docdigest_jobs_in_progress") == 0
    assert value("docdigest_dead_letters") == 1
    assert value("docdigest_queue_depth") == 0
    assert value("docdigest_workers_live") == 1
