"""Arq worker settings: every domain's jobs and cron jobs, and what they share.

`arq docdigest.worker.WorkerSettings` and `docdigest worker` both use this.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.cron import CronJob, cron
from arq.worker import Function, Worker

from docdigest.core.checkpoints import WalCheckpoints
from docdigest.core.db import create_engine, create_sessionmaker
from docdigest.core.heap import freeze_startup_heap
from docdigest.core.logging import configure_logging
from docdigest.core.queue import redis_settings
from docdigest.digest.jobs import cleanup_temp_uploads, send_digest, send_user_digest
from docdigest.documents.extract.sandbox import warm_up
from docdigest.documents.jobs import JOBS as DOCUMENT_JOBS
from docdigest.documents.pipeline import load_summarizers
from docdigest.documents.storage import Storage
from docdigest.jobs.dashboard.workers import HEALTH_CHECK_INTERVAL_S, health_check_key
from docdigest.jobs.ledger import Ledger
from docdigest.jobs.metrics import worker_started, worker_stopped
from docdigest.jobs.reconcile import reconcile_cron
from docdigest.jobs.registry import JobSpec
from docdigest.jobs.wakeup import WakeUpWorker
from docdigest.mail.jobs import JOBS as MAIL_JOBS
from docdigest.mail.mailer import Mailer
from docdigest.settings import Settings, get_settings
from docdigest.users.jobs import JOBS as USER_JOBS

ALL_JOBS: list[JobSpec] = [
    *USER_JOBS,
    *DOCUMENT_JOBS,
    *MAIL_JOBS,
    send_digest,
    send_user_digest,
    cleanup_temp_uploads,
]


def cron_jobs(settings: Settings) -> list[CronJob]:
    def schedule(spec: JobSpec, hour: int, minute: int) -> CronJob:
        function = spec.arq_function(settings)
        return cron(
            function.coroutine,
            name=spec.name,
            hour=hour,
            minute=minute,
            unique=True,
            timeout=spec.timeout_s,
            max_tries=1,
        )

    return [
        schedule(send_digest, settings.digest_hour, 0),
        schedule(cleanup_temp_uploads, 3, 30),
        reconcile_cron(ALL_JOBS),
    ]


def worker_options(settings: Settings) -> dict[str, Any]:
    """Everything `arq.Worker` needs, built from one Settings object."""

    async def startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings.database_url)
        ctx["checkpoints"] = WalCheckpoints.start_for(engine)
        ctx["engine"] = engine
        ctx["settings"] = settings
        ctx["sessionmaker"] = create_sessionmaker(engine, queue=ctx["redis"], settings=settings)
        # Its notes go soon while the worker is idle, in batches while it runs jobs.
        worker: Worker | None = ctx.get("worker")  # set by WakeUpWorker, not by plain Arq
        ctx["ledger"] = Ledger(
            engine,
            flush_s=settings.job_ledger_flush_s,
            busy=None if worker is None else lambda: worker.job_counter > 0,
        )
        ctx["resources"] = {
            Mailer: Mailer.from_settings(settings),
            Storage: Storage.from_settings(settings),
        }
        # The extraction fork server imports the converters (~1 s): pay that before
        # announcing the worker, not on its first document.
        await asyncio.to_thread(warm_up)
        await worker_started(ctx, settings)

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "ledger" in ctx:
            await ctx["ledger"].close()
        if "resources" in ctx:
            await ctx["resources"][Mailer].aclose()
        if "sessionmaker" in ctx:
            await worker_stopped(ctx, settings)
        if "engine" in ctx:
            await ctx["engine"].dispose()
        if ctx.get("checkpoints") is not None:
            await ctx["checkpoints"].stop()

    # Before the heap is frozen, and before the first document needs them.
    load_summarizers(settings)
    functions: list[Function] = [spec.arq_function(settings) for spec in ALL_JOBS]
    return {
        "functions": functions,
        "cron_jobs": cron_jobs(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(settings),
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_s,
        "timezone": settings.tz,
        "job_completion_wait": 120,
        "allow_abort_jobs": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        # One key per worker so the dashboard can list each of them.
        "health_check_key": health_check_key(settings),
        "keep_result": 3600,
    }


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    return WakeUpWorker(**(worker_options(settings) | overrides))


def __getattr__(name: str) -> Any:
    # `arq docdigest.worker.WorkerSettings` reads this attribute; building it lazily
    # keeps importing this module free of side effects.
    if name == "WorkerSettings":
        settings = get_settings()
        configure_logging(settings)
        options = worker_options(settings)
        freeze_startup_heap()
        return type("WorkerSettings", (), options)
    raise AttributeError(name)
