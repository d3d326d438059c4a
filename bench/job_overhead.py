"""No-op jobs per second through the docdigest job tier vs bare Arq, on one private Redis.

Variants, one run, each in its own worker process: the docdigest tier (ledger,
logging, metrics on) on SQLite and, when DOCDIGEST_BENCH_POSTGRES_URL /
DOCDIGEST_TEST_POSTGRES_URL is set, PostgreSQL; bare Arq with the same worker
settings; bare Arq with its defaults; and, for context, bare Arq polling every
10 ms (what polling alone buys). Jobs are queued first, then one burst
worker drains them and is timed. Headline: the slower database's docdigest
figure over tuned bare Arq (in --full, the best of three interleaved rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker
from sqlalchemy import func, select

from bench.common import (
    arguments,
    database,
    postgres_admin_url,
    private_redis,
    quiet_logging,
    report,
)
from bench.common import run as run_main
from docdigest.core.db import commit, create_engine, create_sessionmaker
from docdigest.core.queue import connect_queue
from docdigest.jobs import JobContext, enqueue, job
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import Settings
from docdigest.worker import create_worker, worker_options


@job(timeout_s=10, max_tries=1)
async def noop(jc: JobContext, n: int) -> None:
    return None


async def bare_noop(ctx: dict[str, Any], n: int) -> None:
    return None


# For context only: bare Arq polling every 10 ms instead of being woken up.
FAST_POLL = {"poll_delay": 0.01}


def tuned_options() -> dict[str, Any]:
    """The worker options docdigest runs with, minus its own functions and hooks."""
    keep = ("max_jobs", "poll_delay", "job_completion_wait", "allow_abort_jobs", "keep_result")
    return {k: v for k, v in worker_options(Settings()).items() if k in keep}


async def docdigest_rate(redis_url: str, database_url: str, jobs: int) -> dict[str, float]:
    settings = Settings(
        env="test",
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"bench:{uuid.uuid4().hex[:8]}",
        data_dir=Path(tempfile.gettempdir()) / "docdigest-bench",
    )
    engine = create_engine(settings.database_url)
    queue = await connect_queue(settings)
    sessions = create_sessionmaker(engine, queue=queue, settings=settings)
    for start in range(0, jobs, 500):
        async with sessions() as session:
            for n in range(start, min(start + 500, jobs)):
                await enqueue(session, noop, n=n)
            await commit(session)
    await queue.aclose()
    worker = create_worker(
        settings,
        functions=[noop.arq_function(settings)],
        cron_jobs=[],
        burst=True,
        handle_signals=False,
    )
    try:
        result = await _drain(worker, jobs)
        # The figure counts only if the ledger recorded every job as done.
        async with sessions() as session:
            undone = await session.scalar(
                select(func.count()).where(JobRun.status != JobStatus.SUCCEEDED)
            )
        assert undone == 0, f"the ledger has {undone} jobs not recorded as succeeded"
        return result
    finally:
        await engine.dispose()


async def bare_rate(redis_url: str, jobs: int, options: dict[str, Any]) -> dict[str, float]:
    queue_name = f"bench:{uuid.uuid4().hex[:8]}"
    redis = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(redis, default_queue_name=queue_name)
    for start in range(0, jobs, 500):
        batch = range(start, min(start + 500, jobs))
        await asyncio.gather(*(pool.enqueue_job("bare_noop", n=n) for n in batch))
    await pool.aclose()
    worker = Worker(
        functions=[bare_noop],
        queue_name=queue_name,
        redis_settings=redis,
        burst=True,
        handle_signals=False,
        **options,
    )
    return await _drain(worker, jobs)


async def _drain(worker: Worker, jobs: int) -> dict[str, float]:
    started, cpu = time.perf_counter(), time.process_time()
    try:
        await worker.main()
    finally:
        await worker.close()
    elapsed = time.perf_counter() - started
    assert worker.jobs_complete == jobs, f"{worker.jobs_complete} of {jobs} jobs completed"
    # CPU per job is steadier than wall time on a busy machine; reported alongside.
    cpu_us = (time.process_time() - cpu) / jobs * 1e6
    return {"rate": round(jobs / elapsed, 1), "cpu_us_per_job": round(cpu_us)}


async def child(args: argparse.Namespace) -> None:
    """One variant in this process: prints {"rate", "cpu_us_per_job"}."""
    quiet_logging()

    async def drain(jobs: int) -> dict[str, float]:
        if args.variant == "docdigest":
            return await docdigest_rate(args.redis, args.database, jobs)
        if args.variant == "bare_tuned":
            return await bare_rate(args.redis, jobs, tuned_options())
        if args.variant == "bare_fast_poll":
            return await bare_rate(args.redis, jobs, tuned_options() | FAST_POLL)
        return await bare_rate(args.redis, jobs, {})

    # A first small drain warms imports, connections and caches for every variant alike.
    await drain(50)
    print(json.dumps(await drain(int(args.jobs))))


def measure(variant: str, redis_url: str, jobs: int, database_url: str = "") -> dict[str, float]:
    command = [sys.executable, "-m", "bench.job_overhead", "--variant", variant]
    command += ["--redis", redis_url, "--jobs", str(jobs), "--database", database_url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def parent(full: bool) -> None:
    jobs, rounds = (3000, 3) if full else (400, 1)
    kinds = ["sqlite"] + (["postgres"] if postgres_admin_url() else [])
    runs: dict[str, list[dict[str, float]]] = {}
    with private_redis() as redis_url, tempfile.TemporaryDirectory() as tmp:
        async with _databases(kinds, Path(tmp)) as urls:
            for _ in range(rounds):
                for name, variant, url in [
                    ("bare_arq_defaults", "bare_defaults", ""),
                    ("bare_arq_tuned", "bare_tuned", ""),
                    ("bare_arq_fast_poll", "bare_fast_poll", ""),
                    *[(f"docdigest_{k}", "docdigest", urls[k]) for k in kinds],
                ]:
                    result = await asyncio.to_thread(measure, variant, redis_url, jobs, url)
                    runs.setdefault(name, []).append(result)
    best = {name: max(r["rate"] for r in results) for name, results in runs.items()}
    worst = min(best[f"docdigest_{k}"] for k in kinds)
    tuned_ratio = worst / best["bare_arq_tuned"]
    default_ratio = worst / best["bare_arq_defaults"]
    report(
        name="job_overhead",
        params={"jobs": jobs, "rounds": rounds, "databases": kinds, "tuned": tuned_options()},
        figure=worst,
        unit="jobs/s",
        baseline=best["bare_arq_tuned"],
        target=">= 0.8x bare Arq with the same settings; >= 5x bare Arq with its defaults",
        meets=tuned_ratio >= 0.8 and default_ratio >= 5,
        ratio_vs_defaults=round(default_ratio, 3),
        jobs_per_s=best,
        cpu_us_per_job={
            name: min(r["cpu_us_per_job"] for r in results) for name, results in runs.items()
        },
    )


class _databases:
    """Every database kind at once, each fresh."""

    def __init__(self, kinds: list[str], workdir: Path) -> None:
        self.managers = {kind: database(kind, workdir) for kind in kinds}

    async def __aenter__(self) -> dict[str, str]:
        return {kind: await m.__aenter__() for kind, m in self.managers.items()}

    async def __aexit__(self, *exc: object) -> None:
        for manager in self.managers.values():
            await manager.__aexit__(None, None, None)


def main() -> None:
    args = arguments(__doc__ or "", "variant", "redis", "database", "jobs")
    run_main(child(args) if args.variant else parent(args.full))


if __name__ == "__main__":
    main()
