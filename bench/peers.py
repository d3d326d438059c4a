"""The same workload through SAQ and Celery, beside docdigest's job tier (report only).

Each system gets a worker process of its own on one private Redis, with default
settings. Throughput: N jobs are queued, a worker drains them; each job stamps
its finish time in a Redis list and the rate is taken from first to last stamp
(so process start-up does not count). Latency: one job at a time, idle worker,
enqueue -> start. docdigest runs on SQLite with its ledger on.
Needs the optional `bench` extra (pip install -e '.[bench]'); a missing peer is
reported as skipped.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from subprocess import Popen
from typing import TYPE_CHECKING, Any

import redis as sync_redis
import redis.asyncio as aioredis

from bench.common import (
    arguments,
    bench_settings,
    database,
    percentile_ms,
    private_redis,
    quiet_child,
    report,
)
from bench.common import run as run_main
from docdigest.core.db import commit, create_engine, create_sessionmaker
from docdigest.core.queue import connect_queue
from docdigest.jobs import JobContext, enqueue, job

if TYPE_CHECKING:
    from celery import Celery
    from saq.types import Context

STAMPS = "bench:peers:stamps"
_stamper: aioredis.Redis | None = None


async def stamp(redis_url: str, sent: float) -> None:
    global _stamper
    if _stamper is None:
        _stamper = aioredis.Redis.from_url(redis_url)
    now = time.time()
    await _stamper.rpush(STAMPS, f"{now} {now - sent}")  # type: ignore[misc]


# ---------------------------------------------------------------- docdigest


@job(timeout_s=10, max_tries=1)
async def dd_probe(jc: JobContext, sent: float) -> None:
    await stamp(jc.settings.redis_url, sent)


def dd_worker(redis_url: str, database_url: str, queue: str) -> None:
    from docdigest.worker import create_worker

    settings = bench_settings(redis_url, database_url, queue)
    create_worker(settings, functions=[dd_probe.arq_function(settings)], cron_jobs=[]).run()


async def dd_sender(
    redis_url: str, database_url: str, queue: str
) -> tuple[Callable[[], Awaitable[None]], Callable[[int], Awaitable[None]]]:
    settings = bench_settings(redis_url, database_url, queue)
    pool = await connect_queue(settings)
    sessions = create_sessionmaker(create_engine(database_url), queue=pool, settings=settings)

    async def send() -> None:
        async with sessions() as session:
            await enqueue(session, dd_probe, sent=time.time())
            await commit(session)

    async def send_many(count: int) -> None:
        async with sessions() as session:
            for _ in range(count):
                await enqueue(session, dd_probe, sent=time.time())
            await commit(session)

    return send, send_many


# ---------------------------------------------------------------- SAQ


async def saq_probe(ctx: Context, *, sent: float, redis_url: str) -> None:
    await stamp(redis_url, sent)


def saq_worker(redis_url: str, queue: str) -> None:
    from saq import Queue, Worker

    async def main() -> None:
        worker = Worker(Queue.from_url(redis_url, name=queue), functions=[saq_probe])
        await worker.start()

    asyncio.run(main())


async def saq_sender(redis_url: str, queue: str) -> Callable[[], Awaitable[None]]:
    from saq import Queue

    saq_queue = Queue.from_url(redis_url, name=queue)
    await saq_queue.connect()

    async def send() -> None:
        await saq_queue.enqueue("saq_probe", sent=time.time(), redis_url=redis_url)

    return send


# ---------------------------------------------------------------- Celery


def celery_app(redis_url: str, queue: str) -> Celery:
    from celery import Celery

    app = Celery("bench", broker=redis_url)
    app.conf.task_default_queue = queue
    app.conf.worker_hijack_root_logger = False

    def celery_probe(sent: float) -> None:
        now = time.time()
        _sync_stamper(redis_url).rpush(STAMPS, f"{now} {now - sent}")

    # Registered by a call, not as a decorator: Celery leaves its decorators untyped.
    app.task(name="celery_probe", ignore_result=True)(celery_probe)
    return app


_sync_clients: dict[str, sync_redis.Redis] = {}


def _sync_stamper(redis_url: str) -> sync_redis.Redis:
    if redis_url not in _sync_clients:
        _sync_clients[redis_url] = sync_redis.Redis.from_url(redis_url)
    return _sync_clients[redis_url]


def celery_worker(redis_url: str, queue: str) -> None:
    app = celery_app(redis_url, queue)
    app.worker_main(
        [
            "worker",
            "-P",
            "solo",
            "--loglevel=WARNING",
            "-Q",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
    )


async def celery_sender(redis_url: str, queue: str) -> Callable[[], Awaitable[None]]:
    app = celery_app(redis_url, queue)

    async def send() -> None:
        app.send_task("celery_probe", kwargs={"sent": time.time()}, queue=queue)

    return send


# ---------------------------------------------------------------- measuring


def worker_process(
    system: str, redis_url: str, database_url: str, queue: str
) -> ContextManager[Popen[bytes]]:
    command = [sys.executable, "-m", "bench.peers", "--worker", system]
    return quiet_child(
        [*command, "--redis", redis_url, "--database", database_url, "--queue", queue]
    )


async def read_stamps(
    reports: aioredis.Redis, count: int, timeout_s: float
) -> list[tuple[float, float]]:
    values: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        item = await reports.blpop([STAMPS], timeout=1)  # type: ignore[misc]
        if item is not None:
            finished, waited = item[1].decode().split()
            values.append((float(finished), float(waited)))
    return values


async def measure_system(
    system: str, redis_url: str, database_url: str, jobs: int, samples: int
) -> dict[str, Any]:
    queue = f"bench-{system}-{uuid.uuid4().hex[:6]}"
    reports = aioredis.Redis.from_url(redis_url)
    await reports.delete(STAMPS)
    send_many: Callable[[int], Awaitable[None]] | None = None
    if system == "docdigest":
        send, send_many = await dd_sender(redis_url, database_url, queue)
    elif system == "saq":
        send = await saq_sender(redis_url, queue)
    else:
        send = await celery_sender(redis_url, queue)
    with worker_process(system, redis_url, database_url, queue):
        await send()
        await read_stamps(reports, 1, 90)  # the worker is up
        latencies: list[float] = []
        for _ in range(samples):
            await asyncio.sleep(random.uniform(0.02, 0.06))
            await send()
            latencies += [w for _, w in await read_stamps(reports, 1, 10)]
    # Throughput: the jobs wait in the queue first, so only the worker is measured.
    if send_many is not None:
        await send_many(jobs)
    else:
        for _ in range(jobs):
            await send()
    with worker_process(system, redis_url, database_url, queue):
        finished = sorted(f for f, _ in await read_stamps(reports, jobs, 120))
    await reports.aclose()
    rate = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else 0.0
    return {
        "jobs_per_s": round(rate, 1),
        "completed": f"{len(finished)}/{jobs}",
        "idle_p50_ms": _percentile(latencies, 50),
        "idle_p99_ms": _percentile(latencies, 99),
    }


def _percentile(values: list[float], p: float) -> float | None:
    return percentile_ms(values, p) if values else None


def _available(system: str) -> bool:
    try:
        __import__(system)
    except ImportError:
        return False
    return True


async def measure(full: bool) -> None:
    jobs, samples = (3000, 200) if full else (300, 20)
    results: dict[str, Any] = {}
    with private_redis() as redis_url, tempfile.TemporaryDirectory() as tmp:
        async with database("sqlite", Path(tmp)) as database_url:
            for system in ("docdigest", "saq", "celery"):
                if system != "docdigest" and not _available(system):
                    results[system] = "skipped: not installed (pip install -e '.[bench]')"
                    continue
                results[system] = await measure_system(
                    system, redis_url, database_url, jobs, samples
                )
    ours = results["docdigest"]["jobs_per_s"]
    peer_rates = [
        r["jobs_per_s"] for k, r in results.items() if k != "docdigest" and isinstance(r, dict)
    ]
    best_peer = max(peer_rates) if peer_rates else None
    report(
        name="peers",
        params={
            "jobs": jobs,
            "latency_samples": samples,
            "worker_settings": "each system's defaults",
        },
        figure=ours,
        unit="jobs/s",
        baseline=best_peer,
        target="report only; no target yet",
        meets=True,
        systems=results,
    )


def main() -> None:
    args = arguments(__doc__ or "", "worker", "redis", "database", "queue")
    if args.worker == "docdigest":
        dd_worker(args.redis, args.database, args.queue)
    elif args.worker == "saq":
        saq_worker(args.redis, args.queue)
    elif args.worker == "celery":
        celery_worker(args.redis, args.queue)
    else:
        run_main(measure(args.full))


if __name__ == "__main__":
    main()
