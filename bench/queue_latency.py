"""Enqueue -> start latency through the docdigest job tier: idle, and under a steady load.

A real worker process (its own event loop, as in production) runs a probe job
that reports how long ago it was enqueued; the clock starts as the ledger row is
written, so the enqueuing transaction's commit and the push are included.
Idle: one job at a time with a pause between. Load: a steady 200 jobs/s, each
enqueued in its own transaction.
On SQLite and, when DOCDIGEST_BENCH_POSTGRES_URL / DOCDIGEST_TEST_POSTGRES_URL is
set, PostgreSQL. Baseline: bare Arq with its default settings, idle, same Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from subprocess import Popen
from typing import Any

import redis.asyncio as aioredis
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from bench.common import (
    arguments,
    bench_settings,
    database,
    percentile_ms,
    postgres_admin_url,
    private_redis,
    quiet_child,
    report,
)
from bench.common import run as run_main
from docdigest.core.db import commit, create_engine, create_sessionmaker
from docdigest.core.queue import connect_queue
from docdigest.jobs import JobContext, enqueue, job

REPORTS = "bench:latency:reports"
_reporter: aioredis.Redis | None = None


@job(timeout_s=10, max_tries=1)
async def probe(jc: JobContext, sent: float) -> None:
    started = time.time()
    global _reporter
    if _reporter is None:
        _reporter = aioredis.Redis.from_url(jc.settings.redis_url)
    await _reporter.rpush(REPORTS, str(started - sent))  # type: ignore[misc]


async def bare_probe(ctx: dict[str, Any], sent: float) -> None:
    await ctx["redis"].rpush(REPORTS, str(time.time() - sent))


def run_worker(args: argparse.Namespace) -> None:
    """The worker process: docdigest's (wake-up, ledger) or bare Arq's defaults."""
    if args.worker == "docdigest":
        from docdigest.worker import create_worker

        settings = bench_settings(args.redis, args.database, args.queue)
        worker = create_worker(settings, functions=[probe.arq_function(settings)], cron_jobs=[])
    else:
        worker = Worker(
            functions=[bare_probe],
            queue_name=args.queue,
            redis_settings=RedisSettings.from_dsn(args.redis),
        )
    worker.run()


def worker_process(
    kind: str, redis_url: str, database_url: str, queue: str
) -> ContextManager[Popen[bytes]]:
    command = [sys.executable, "-m", "bench.queue_latency", "--worker", kind]
    return quiet_child(
        [*command, "--redis", redis_url, "--database", database_url, "--queue", queue]
    )


async def collect(reports: aioredis.Redis, count: int, timeout_s: float) -> list[float]:
    values: list[float] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        item = await reports.blpop([REPORTS], timeout=1)  # type: ignore[misc]
        if item is not None:
            values.append(float(item[1]))
    return values


async def docdigest_latencies(
    redis_url: str, database_url: str, idle: int, load_s: float, rate: float
) -> tuple[list[float], list[float], list[float]]:
    queue_name = f"bench:{uuid.uuid4().hex[:8]}"
    settings = bench_settings(redis_url, database_url, queue_name)
    engine = create_engine(database_url)
    queue = await connect_queue(settings)
    sessions = create_sessionmaker(engine, queue=queue, settings=settings)
    reports = aioredis.Redis.from_url(redis_url)
    await reports.delete(REPORTS)

    enqueue_s: list[float] = []

    async def send() -> None:
        sent = time.time()
        async with sessions() as session:
            await enqueue(session, probe, sent=sent)
            await commit(session)
        enqueue_s.append(time.time() - sent)

    with worker_process("docdigest", redis_url, database_url, queue_name):
        # Warm-up: the worker is up and idle when its first probe arrives.
        await send()
        await collect(reports, 1, 60)
        idle_values: list[float] = []
        for _ in range(idle):
            await asyncio.sleep(random.uniform(0.02, 0.06))
            await send()
            idle_values += await collect(reports, 1, 10)
        load_values: list[float] = []
        total = int(load_s * rate)
        started = time.monotonic()
        collector = asyncio.create_task(collect(reports, total, load_s + 30))
        for i in range(total):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send()
        load_values = await collector
    await reports.aclose()
    await queue.aclose()
    await engine.dispose()
    return idle_values, load_values, enqueue_s


async def bare_default_latencies(redis_url: str, samples: int) -> list[float]:
    queue_name = f"bench:{uuid.uuid4().hex[:8]}"
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue_name)
    reports = aioredis.Redis.from_url(redis_url)
    await reports.delete(REPORTS)
    values: list[float] = []
    with worker_process("bare", redis_url, "", queue_name):
        await pool.enqueue_job("bare_probe", sent=time.time())
        await collect(reports, 1, 60)
        for _ in range(samples):
            await asyncio.sleep(random.uniform(0.02, 0.06))
            await pool.enqueue_job("bare_probe", sent=time.time())
            values += await collect(reports, 1, 10)
    await reports.aclose()
    await pool.aclose()
    return values


def percentile(values: list[float], p: float) -> float:
    return percentile_ms(values, p)


async def measure(full: bool) -> None:
    idle, load_s, rate = (300, 15.0, 200.0) if full else (60, 3.0, 200.0)
    kinds = ["sqlite"] + (["postgres"] if postgres_admin_url() else [])
    figures: dict[str, dict[str, Any]] = {}
    with private_redis() as redis_url, tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            async with database(kind, Path(tmp)) as database_url:
                idle_values, load_values, enqueue_s = await docdigest_latencies(
                    redis_url, database_url, idle, load_s, rate
                )
            figures[kind] = {
                "idle_p50_ms": percentile(idle_values, 50),
                "idle_p99_ms": percentile(idle_values, 99),
                "load_p50_ms": percentile(load_values, 50) if load_values else None,
                "load_p99_ms": percentile(load_values, 99) if load_values else float("inf"),
                "load_completed": f"{len(load_values)}/{int(load_s * rate)}",
                # Of the idle figure: the enqueuing transaction (ledger row, commit, push).
                "enqueue_commit_p50_ms": percentile(enqueue_s, 50),
            }
        bare = await bare_default_latencies(redis_url, 40 if full else 10)
    worst = {
        key: max(f[key] for f in figures.values())
        for key in ("idle_p50_ms", "idle_p99_ms", "load_p99_ms")
    }
    report(
        name="queue_latency",
        params={
            "idle_samples": idle,
            "load_jobs_per_s": rate,
            "load_seconds": load_s,
            "databases": kinds,
        },
        figure=worst["idle_p50_ms"],
        unit="ms (idle p50, slower database)",
        baseline=percentile(bare, 50),
        target="idle p50 <= 5 ms, p99 <= 20 ms; p99 <= 50 ms under 200 jobs/s",
        meets=worst["idle_p50_ms"] <= 5
        and worst["idle_p99_ms"] <= 20
        and worst["load_p99_ms"] <= 50,
        by_database=figures,
        bare_arq_defaults_p99_ms=percentile(bare, 99),
    )


def main() -> None:
    args = arguments(__doc__ or "", "worker", "redis", "database", "queue")
    if args.worker:
        run_worker(args)
    else:
        run_main(measure(args.full))


if __name__ == "__main__":
    main()
