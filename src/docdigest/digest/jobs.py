"""Cron jobs: the daily digest (fanned out per user) and the cleanup of abandoned uploads."""

import asyncio
import logging
from datetime import date, timedelta

from docdigest.core.db import utcnow
from docdigest.digest import service
from docdigest.jobs import JobContext, JobSpec, enqueue, job
from docdigest.mail.mailer import Mailer

log = logging.getLogger(__name__)


@job(timeout_s=120, max_tries=1)
async def send_digest(jc: JobContext) -> None:
    """Queue one small job per user, at the user's own hour, keyed by user and day
    so that nobody gets two digests for a day."""
    now = utcnow()
    plans = await service.plan_digests(jc.session, jc.settings, now)
    for plan in plans:
        await enqueue(
            jc.session,
            send_user_digest,
            key=service.digest_key(plan.user_id, plan.date),
            defer_until=plan.send_at if plan.send_at > now else None,
            user_id=plan.user_id,
            date=plan.date.isoformat(),
        )
    log.info("digest fanned out", extra={"users": len(plans)})


@job(timeout_s=30, subject="user:{user_id}")
async def send_user_digest(jc: JobContext, user_id: int, date: str) -> None:
    day = _parse_date(date)
    outcome = await service.send_user_digest(jc.session, jc.resource(Mailer), user_id, day)
    log.info(f"digest {outcome}", extra={"user_id": user_id, "date": date})


def _parse_date(value: str) -> date:
    return date.fromisoformat(value)


@job(timeout_s=60, max_tries=1)
async def cleanup_temp_uploads(jc: JobContext) -> None:
    max_age = timedelta(hours=jc.settings.temp_upload_max_age_hours)
    removed = await asyncio.to_thread(
        service.remove_stale_files, jc.settings.upload_tmp_dir, max_age
    )
    log.info("temporary uploads cleaned", extra={"removed": removed})


JOBS: list[JobSpec] = [send_digest, send_user_digest, cleanup_temp_uploads]
