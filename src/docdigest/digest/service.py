"""The daily digest: which documents a user gets mailed about, for which day."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.documents.models import Document, DocumentStatus
from docdigest.jobs.enqueue import settings_of
from docdigest.mail.mailer import Mailer
from docdigest.mail.outbox import public_base_url, send_once
from docdigest.settings import Settings
from docdigest.users.models import User

log = logging.getLogger(__name__)

EXCERPT_CHARS = 400


@dataclass(frozen=True)
class DigestPeriod:
    """The 24 h before one digest time; the date names it in mail keys and subjects."""

    date: date
    start: datetime
    end: datetime


def period_ending(end: datetime) -> DigestPeriod:
    # `end` carries the user's zone, so its date is the local date; subtracting a
    # day is wall-clock arithmetic, so consecutive periods tile across DST changes.
    return DigestPeriod(date=end.date(), start=end - timedelta(hours=24), end=end)


def latest_period(settings: Settings, now: datetime) -> DigestPeriod:
    """The period ending at the cron's last digest time at or before `now`.

    Fixed boundaries (not "now minus 24 h") keep a late or repeated cron run on the
    same period, with the same documents and the same keys.
    """
    local = now.astimezone(settings.tz)
    day = local.date() if local.hour >= settings.digest_hour else local.date() - timedelta(days=1)
    return period_ending(_at_hour(day, settings.digest_hour, settings.tz))


def user_period(user: User, day: date, fallback: ZoneInfo) -> DigestPeriod:
    """The user's period whose digest goes out on `day` at their preferred hour."""
    return period_ending(_at_hour(day, user.digest_hour, _zone(user.timezone, fallback)))


def next_send_time(user: User, reference: datetime, fallback: ZoneInfo) -> datetime:
    """The first time at or after `reference` when it is the user's digest hour."""
    zone = _zone(user.timezone, fallback)
    today = reference.astimezone(zone).date()
    send_at = _at_hour(today, user.digest_hour, zone)
    return (
        send_at
        if send_at >= reference
        else _at_hour(today + timedelta(days=1), user.digest_hour, zone)
    )


def _at_hour(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone)


def _zone(name: str, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def _ready_between(period: DigestPeriod) -> list[ColumnElement[bool]]:
    return [
        Document.status == DocumentStatus.READY,
        Document.ready_at >= period.start,
        Document.ready_at < period.end,
    ]


@dataclass(frozen=True)
class DigestPlan:
    user_id: int
    date: date
    send_at: datetime


async def plan_digests(
    session: AsyncSession, settings: Settings, now: datetime
) -> list[DigestPlan]:
    """Who gets a digest from this cron run, and when (each at their own hour).

    The run belongs to the cron's last slot, so a late or repeated run plans the same
    sends. A digest due now is planned only if it has documents; one due later is
    planned for everyone who has ever uploaded, since documents may still become ready.
    """
    reference = latest_period(settings, now).end
    users = await session.scalars(
        select(User)
        .where(User.digest_opt_in.is_(True))
        .where(User.id.in_(select(Document.user_id)))
        .order_by(User.id)
    )
    plans = []
    for user in users:
        send_at = next_send_time(user, reference, settings.tz)
        if send_at <= now and not await _has_documents(session, user.id, period_ending(send_at)):
            continue
        plans.append(DigestPlan(user_id=user.id, date=send_at.date(), send_at=send_at))
    return plans


async def _has_documents(session: AsyncSession, user_id: int, period: DigestPeriod) -> bool:
    found = await session.scalar(
        select(Document.id).where(Document.user_id == user_id, *_ready_between(period)).limit(1)
    )
    return found is not None


async def send_user_digest(session: AsyncSession, mailer: Mailer, user_id: int, day: date) -> str:
    """Mail one user their digest for `day`, once; returns what happened."""
    user = await session.get(User, user_id)
    if user is None or not user.digest_opt_in:
        return "skipped: account deleted or opted out"
    settings = settings_of(session)
    period = user_period(user, day, settings.tz)
    documents = (
        await session.scalars(
            select(Document)
            .where(Document.user_id == user_id, *_ready_between(period))
            .order_by(Document.ready_at, Document.id)
        )
    ).all()
    if not documents:
        return "skipped: no documents"
    base_url = public_base_url(settings)
    items = [
        {
            "filename": d.filename,
            "summary": _excerpt(d.summary or ""),
            "url": f"{base_url}/documents/{d.id}",
        }
        for d in documents
    ]
    sent = await send_once(
        session,
        mailer,
        key=digest_key(user_id, period.date),
        to=user.email,
        template="digest",
        context={"user": user, "date": period.date.isoformat(), "documents": items},
    )
    return f"sent {len(items)} documents" if sent else "skipped: sent before"


def digest_key(user_id: int, day: date) -> str:
    return f"digest:{user_id}:{day.isoformat()}"


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rstrip() + "…"


def remove_stale_files(directory: Path, max_age: timedelta) -> int:
    """Delete files under `directory` last modified before `max_age` ago (blocking)."""
    if not directory.is_dir():
        return 0
    cutoff = time.time() - max_age.total_seconds()
    removed = 0
    for path in directory.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # an upload finished (and moved its file) while we looked
    return removed
