"""The worker's schedule: digest at the configured hour, cleanup at 03:30, local time."""

from __future__ import annotations

import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.core.queue import connect_queue
from docdigest.digest.jobs import cleanup_temp_uploads
from docdigest.jobs import enqueue
from docdigest.settings import Settings
from docdigest.worker import cron_jobs, worker_options
from tests.conftest import RunWorker


def test_cron_jobs_run_at_their_hours_in_the_configured_time_zone(settings: Settings) -> None:
    local = settings.model_copy(update={"timezone": "Europe/Paris", "digest_hour": 7})

    crons = {c.name: c for c in cron_jobs(local)}

    assert (crons["send_digest"].hour, crons["send_digest"].minute) == (7, 0)
    assert (crons["cleanup_temp_uploads"].hour, crons["cleanup_temp_uploads"].minute) == (3, 30)
    assert crons["send_digest"].unique and crons["cleanup_temp_uploads"].unique
    assert worker_options(local)["timezone"] == ZoneInfo("Europe/Paris")


def test_default_digest_time_is_nine(settings: Settings) -> None:
    crons = {c.name: c for c in cron_jobs(settings.model_copy(update={"digest_hour": 9}))}
    assert (crons["send_digest"].hour, crons["send_digest"].minute) == (9, 0)


async def test_cleanup_removes_only_abandoned_partial_uploads(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker
) -> None:
    tmp = settings.upload_tmp_dir
    (tmp / "nested").mkdir(parents=True)
    old, fresh, old_nested = tmp / "old.part", tmp / "fresh.part", tmp / "nested" / "old.part"
    for path in (old, fresh, old_nested):
        path.write_bytes(b"partial")
    long_ago = time.time() - (settings.temp_upload_max_age_hours + 1) * 3600
    for path in (old, old_nested):
        os.utime(path, (long_ago, long_ago))
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        await enqueue(session, cleanup_temp_uploads)
        await commit(session)

    await run_worker()

    assert sorted(p.name for p in Path(tmp).rglob("*") if p.is_file()) == ["fresh.part"]
    await queue.aclose()
