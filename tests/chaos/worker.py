"""A worker process for the chaos tests: `python -m tests.chaos.worker`, configured by DOCDIGEST_*.

Its jobs leave their marks in Redis lists next to the test's queue, so a test sees
every start and every effect, duplicates included.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis

from docdigest.core.logging import configure_logging
from docdigest.jobs import JobContext, Transient, job
from docdigest.settings import Settings, get_settings
from docdigest.worker import ALL_JOBS, create_worker

_redis: aioredis.Redis | None = None


def marks_key(settings: Settings, kind: str) -> str:
    return f"{settings.queue_name}:marks:{kind}"


async def mark(settings: Settings, kind: str, tag: str) -> None:
    global _redis
    if _redis is None:
        _redis = aioredis.Redis.from_url(settings.redis_url)
    await _redis.rpush(marks_key(settings, kind), tag)  # type: ignore[misc]


@job(timeout_s=3, max_tries=5)
async def slow_effect(jc: JobContext, tag: str, seconds: float) -> None:
    await mark(jc.settings, "starts", tag)
    await asyncio.sleep(seconds)
    await mark(jc.settings, "effects", tag)


@job(timeout_s=3, max_tries=5)
async def quick_effect(jc: JobContext, tag: str) -> None:
    await mark(jc.settings, "effects", tag)


@job(timeout_s=3, max_tries=4, retry_base_s=0.2, retry_cap_s=0.6)
async def always_down(jc: JobContext) -> None:
    await mark(jc.settings, "starts", str(jc.attempt))
    raise Transient("the mail server says 451, try later")


JOBS = [slow_effect, quick_effect, always_down]


def main() -> None:
    """CHAOS_ALL_JOBS=1 adds the product's own jobs (and their longer timeouts)."""
    settings = get_settings()
    configure_logging(settings)
    specs = [*JOBS, *ALL_JOBS] if os.environ.get("CHAOS_ALL_JOBS") else JOBS
    functions = [spec.arq_function(settings) for spec in specs]
    create_worker(settings, functions=functions, cron_jobs=[]).run()


if __name__ == "__main__":
    main()
