"""Job metrics the worker exposes to Prometheus; the job wrapper calls the two hooks.

Label values are bounded: `function` is a declared job name, `outcome` one of four words.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.jobs.dashboard.workers import (
    list_workers,
    newest_heartbeat_age,
    register_worker,
    unregister_worker,
)
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import Settings

log = logging.getLogger("docdigest.jobs")

Outcome = Literal["succeeded", "failed", "retried", "cancelled"]

# Jobs run from ~1 ms (no-ops) to the 120 s timeout cap; queue waits can reach hours
# (deferred work is measured from its scheduled time, so those stay short too).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

JOBS_TOTAL = Counter(
    "docdigest_jobs_total", "Job attempts finished, by outcome.", ["function", "outcome"]
)
JOB_DURATION = Histogram(
    "docdigest_job_duration_seconds",
    "Time one job attempt ran.",
    ["function"],
    buckets=_DURATION_BUCKETS,
)
JOB_QUEUE_WAIT = Histogram(
    "docdigest_job_queue_wait_seconds",
    "Time from enqueue (or scheduled time) to the start of an attempt.",
    ["function"],
    buckets=_WAIT_BUCKETS,
)
JOBS_IN_PROGRESS = Gauge(
    "docdigest_jobs_in_progress",
    "Job attempts running in this worker.",
    multiprocess_mode="livesum",
)


def observe_start(function: str, queue_wait_s: float) -> None:
    JOB_QUEUE_WAIT.labels(function).observe(max(queue_wait_s, 0.0))
    JOBS_IN_PROGRESS.inc()


def observe_end(function: str, outcome: str, duration_s: float) -> None:
    JOBS_TOTAL.labels(function, outcome).inc()
    JOB_DURATION.labels(function).observe(max(duration_s, 0.0))
    JOBS_IN_PROGRESS.dec()


class QueueGauges(Collector):
    """Queue depth, dead letters and worker liveness as of the latest scrape.

    The worker's endpoint reads them (async, on the worker's loop) right before it
    renders, so `collect` itself, which must be synchronous, only reports them.
    """

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from gauge_families(self.values)


_GAUGES = {
    "docdigest_queue_depth": "Jobs due to run and waiting for a worker.",
    "docdigest_queue_deferred": "Jobs in the queue scheduled for later (deferred or backing off).",
    "docdigest_dead_letters": "Jobs that failed for good and wait for a requeue.",
    "docdigest_workers_live": "Workers whose Arq heartbeat is current.",
    "docdigest_worker_heartbeat_age_seconds": "Age of the newest worker heartbeat.",
}


def gauge_families(values: dict[str, float]) -> Iterator[GaugeMetricFamily]:
    for name, help_text in _GAUGES.items():
        if name in values:
            yield GaugeMetricFamily(name, help_text, value=values[name])


async def count_dead_letters(session: AsyncSession) -> int:
    query = select(func.count()).select_from(JobRun).where(JobRun.status == JobStatus.FAILED)
    return int(await session.scalar(query) or 0)


async def read_queue_gauges(
    redis: Redis, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[str, float]:
    async with sessionmaker() as session:
        dead = await count_dead_letters(session)
    workers = await list_workers(redis, settings)
    now_ms = int(time.time() * 1000)
    due = await redis.zcount(settings.queue_name, "-inf", now_ms)
    values = {
        "docdigest_queue_depth": float(due),
        "docdigest_queue_deferred": float(await redis.zcard(settings.queue_name) - due),
        "docdigest_dead_letters": float(dead),
        "docdigest_workers_live": float(sum(w.alive for w in workers)),
    }
    age = newest_heartbeat_age(workers)
    if age is not None:
        values["docdigest_worker_heartbeat_age_seconds"] = age
    return values


_queue_gauges = QueueGauges()
REGISTRY.register(_queue_gauges)


async def worker_started(ctx: dict[str, Any], settings: Settings) -> None:
    """Arq on_startup: announce this worker and serve its metrics when a port is set.

    The endpoint runs on the worker's own event loop, so a scrape (or a liveness
    probe) that gets an answer also proves the loop is not stuck.
    """
    port = settings.worker_metrics_port
    if port is not None:

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _answer_scrape(reader, writer, ctx["redis"], settings, ctx["sessionmaker"])

        server = await asyncio.start_server(answer, settings.host, port)
        port = int(server.sockets[0].getsockname()[1])
        ctx["metrics_server"] = server
        log.info("worker metrics on port %s", port, extra={"metrics_port": port})
    await register_worker(ctx["redis"], settings, metrics_port=port)


async def worker_stopped(ctx: dict[str, Any], settings: Settings) -> None:
    server: asyncio.Server | None = ctx.pop("metrics_server", None)
    if server is not None:
        server.close()
    _queue_gauges.values = {}
    await unregister_worker(ctx["redis"], settings)


async def _answer_scrape(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    redis: Redis,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Just enough HTTP/1.1 for Prometheus and probes: GET /metrics, then close."""
    try:
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        path = parts[1].split(b"?")[0] if len(parts) == 3 else b""
        status, body = b"404 Not Found", b"not found\n"
        if path in (b"/metrics", b"/"):
            try:
                async with asyncio.timeout(2):
                    _queue_gauges.values = await read_queue_gauges(redis, settings, sessionmaker)
            except Exception:
                log.warning("queue gauges unavailable for this scrape", exc_info=True)
            status, body = b"200 OK", generate_latest(REGISTRY)
        writer.write(
            b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, CONTENT_TYPE_LATEST.encode(), len(body))
            + body
        )
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()
