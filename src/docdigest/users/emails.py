"""The mails an account gets for being an account: welcome, and the onboarding nudge."""

from __future__ import annotations

import logging

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.documents.models import Document
from docdigest.mail.mailer import Mailer
from docdigest.mail.outbox import record_skipped, send_once
from docdigest.users.models import User

log = logging.getLogger(__name__)


async def send_welcome(session: AsyncSession, mailer: Mailer, user_id: int) -> bool:
    user = await session.get(User, user_id)
    if user is None:
        log.info("welcome mail skipped: account deleted", extra={"user_id": user_id})
        return False
    return await send_once(
        session,
        mailer,
        key=f"welcome:{user_id}",
        to=user.email,
        template="welcome",
        context={"user": user},
    )


async def send_nudge(session: AsyncSession, mailer: Mailer, user_id: int) -> str:
    """Nudge a user who has not uploaded anything yet; returns what happened and why."""
    key = f"nudge:{user_id}"
    user = await session.get(User, user_id)
    if user is None:
        outcome = "skipped: account deleted"
    elif await session.scalar(select(exists().where(Document.user_id == user_id))):
        outcome = "skipped: user has uploaded documents already"
        await record_skipped(
            session, key=key, to=user.email, template="onboarding_nudge", reason=outcome
        )
    else:
        sent = await send_once(
            session,
            mailer,
            key=key,
            to=user.email,
            template="onboarding_nudge",
            context={"user": user},
        )
        outcome = "sent" if sent else "skipped: sent before"
    log.info(f"onboarding nudge {outcome}", extra={"user_id": user_id, "outcome": outcome})
    return outcome
